//! Files that hold customer mail are private (SPEC §6): every file teamrelay creates is
//! `0600` and every directory `0700`, whatever the umask it was started with. The mode
//! is given at creation and set again afterwards, because a umask can only take bits
//! away and an existing directory keeps whatever mode it had.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file teamrelay writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory teamrelay creates.
pub const DIR_MODE: u32 = 0o700;

/// The umask for the whole process: files made by libraries (sled's) are private too.
pub fn restrict_umask() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates (truncating) a file readable and writable by its owner only.
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates a new file readable and writable by its owner only; fails if it exists (a
/// spool segment is never overwritten).
pub fn create_new_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates `dir` and any missing parents with mode `0700`, and makes `dir` itself
/// `0700` if it already existed.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Makes everything under `dir` private (a spool made by an older version, or files
/// a library created before the umask applied). Symlinks are left alone.
pub fn restrict_tree(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
        for entry in std::fs::read_dir(dir)? {
            restrict_tree(&entry?.path())?;
        }
    } else if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_whatever_the_umask() {
        let old = unsafe { libc::umask(0o000) };
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir_all(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        let f = d.join("f");
        create_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        restrict_tree(&t.path().join("a")).unwrap();
        assert_eq!((mode(&d), mode(&f)), (0o700, 0o600));
        unsafe { libc::umask(old) };
    }
}
