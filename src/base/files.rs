//! Files that hold household data: created readable by their owner only
//! (0600), or by one configured group as well (0640), never by the umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Who may read the files with household data, set once at start-up.
static READERS: OnceLock<Option<u32>> = OnceLock::new();

/// Lets the group `gid` read household files too (0640); without a call,
/// or with `None`, they are the owner's only. Only the first call counts.
pub fn set_reader_group(gid: Option<u32>) {
    let _ = READERS.set(gid);
}

fn group() -> Option<u32> {
    READERS.get().copied().flatten()
}

/// The mode household files are created with.
pub(crate) fn private_mode() -> u32 {
    if group().is_some() {
        0o640
    } else {
        0o600
    }
}

/// Resolves `group` (a name in /etc/group or a numeric gid) to its gid.
pub fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group to find group {group:?}: {e}"))?;
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(group))
                .then(|| fields.nth(1).and_then(|g| g.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no group {group:?} in /etc/group: create it or give a numeric gid"))
}

/// Creates (or truncates) `path` for household data with [`private_mode`].
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(private_mode())
        .open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Opens `path` for appending household or audit data, created with
/// [`private_mode`].
pub(crate) fn append_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(private_mode())
        .open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it),
/// with [`private_mode`].
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = create_private(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` atomically, readable by its owner only (0600)
/// whatever the reader group: for secrets such as access tokens.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Creates the folder `path` (and its parents) for household data: its
/// owner's only (0700), or 0750 with the reader group. An existing folder
/// is set so too; the parents keep their own modes.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    let mode = if group().is_some() { 0o750 } else { 0o700 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group() {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(())
}

/// Sets the mode (an existing file keeps the one it was made with
/// otherwise) and the group of an open file.
fn restrict(file: &File) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(private_mode()))?;
    if let Some(gid) = group() {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn household_files_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.csv");
        write_private(&path, b"a,b\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"a,b\n");
        let appended = dir.path().join("audit.jsonl");
        drop(append_private(&appended).unwrap());
        let mode = std::fs::metadata(&appended).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = dir.path().join("audit");
        create_private_dir(&folder).unwrap();
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "nobody else lists the audit or the lists");
    }

    #[test]
    fn a_group_is_found_by_name_or_number() {
        assert_eq!(resolve_group("0"), Ok(0));
        assert_eq!(resolve_group("root"), Ok(0));
        assert!(resolve_group("no-such-group-here")
            .unwrap_err()
            .contains("numeric gid"));
    }
}
