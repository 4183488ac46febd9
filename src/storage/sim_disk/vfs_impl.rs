//! The simulated disk as a [`Vfs`]: names, directories, renames and locks, each live at
//! once and durable after `sync_dir`.

use super::*;

impl Vfs for SimDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.lock().dirs.insert(path.to_path_buf());
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let mut files = under(&state.live_names, path).peekable();
        let mut dirs = under_set(&state.dirs, path).peekable();
        if files.peek().is_none() && dirs.peek().is_none() {
            return Err(not_found(path));
        }
        // Direct children: files, and the first component of anything deeper.
        let mut names: Vec<String> = files
            .map(|p| p.as_path())
            .chain(dirs.map(|d| d.as_path()))
            .filter_map(|p| p.strip_prefix(path).ok())
            .filter_map(|rest| rest.components().next())
            .filter_map(|c| c.as_os_str().to_str().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut state = self.lock();
        let id = match mode {
            OpenMode::Create => {
                if let Some(err) = state.fault(FaultOp::Create) {
                    return Err(err);
                }
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.live_names.insert(path.to_path_buf(), id);
                let dir = State::dir_of(path);
                state
                    .pending_dir_ops
                    .push((dir, DirOp::Link(path.to_path_buf(), id)));
                id
            }
            OpenMode::Read | OpenMode::ReadWrite => {
                *state.live_names.get(path).ok_or_else(|| not_found(path))?
            }
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            inode: id,
            generation: state.generation,
            name,
            writable: mode != OpenMode::Read,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state
            .live_names
            .remove(path)
            .ok_or_else(|| not_found(path))?;
        let dir = State::dir_of(path);
        state
            .pending_dir_ops
            .push((dir, DirOp::Unlink(path.to_path_buf())));
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let doomed: Vec<PathBuf> = state
            .live_names
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for file in doomed {
            state.live_names.remove(&file);
            let dir = State::dir_of(&file);
            state.pending_dir_ops.push((dir, DirOp::Unlink(file)));
        }
        state.dirs.retain(|d| !d.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(err) = state.fault(FaultOp::Rename) {
            return Err(err);
        }
        let id = state
            .live_names
            .remove(from)
            .ok_or_else(|| not_found(from))?;
        state.live_names.insert(to.to_path_buf(), id);
        let dir = State::dir_of(to);
        // One atomic directory operation: both changes land together or not at all.
        state
            .pending_dir_ops
            .push((dir.clone(), DirOp::Link(to.to_path_buf(), id)));
        state
            .pending_dir_ops
            .push((dir, DirOp::Unlink(from.to_path_buf())));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(err) = state.fault(FaultOp::SyncDir) {
            return Err(err);
        }
        let pending = std::mem::take(&mut state.pending_dir_ops);
        for (dir, op) in pending {
            if dir != path {
                state.pending_dir_ops.push((dir, op));
                continue;
            }
            match op {
                DirOp::Link(p, id) => {
                    state.durable_names.insert(p, id);
                }
                DirOp::Unlink(p) => {
                    state.durable_names.remove(&p);
                }
            }
        }
        Ok(())
    }

    fn map(&self, path: &Path) -> io::Result<Mapped> {
        let mut state = self.lock();
        let id = *state.live_names.get(path).ok_or_else(|| not_found(path))?;
        let bytes = state
            .inodes
            .get(&id)
            .map(|i| i.live.clone())
            .unwrap_or_default();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        *state.stats.maps.entry(name).or_insert(0) += 1;
        Ok(Mapped::new(bytes))
    }

    fn try_lock_dir(&self, path: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        let mut state = self.lock();
        if !state.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            disk: self.clone(),
            path: path.to_path_buf(),
            generation: state.generation,
        })))
    }
}
