//! What every writer relies on: whole objects, create-if-absent with one
//! winner, keys that cannot leave the store, household files kept private.

use super::*;

fn store() -> (tempfile::TempDir, SharedStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("store")).expect("store");
    (dir, store)
}

#[test]
fn an_object_is_read_back_whole_and_replaced_whole() {
    let (_dir, s) = store();
    assert_eq!(s.get("a/b.txt").unwrap(), None);
    s.put("a/b.txt", &[b"one ", b"two"]).unwrap();
    assert_eq!(s.get("a/b.txt").unwrap().as_deref(), Some(&b"one two"[..]));
    s.put("a/b.txt", &[b"three"]).unwrap();
    assert_eq!(s.get("a/b.txt").unwrap().as_deref(), Some(&b"three"[..]));
    s.put("a/c/d.txt", &[b"x"]).unwrap();
    s.put("e.txt", &[b"y"]).unwrap();
    assert_eq!(s.list("").unwrap(), ["a/b.txt", "a/c/d.txt", "e.txt"]);
    assert_eq!(s.list("a/").unwrap(), ["a/b.txt", "a/c/d.txt"]);
    assert!(s.list("missing/").unwrap().is_empty());
    s.delete("a/c/d.txt").unwrap();
    s.delete("a/c/d.txt").unwrap();
    assert_eq!(s.list("").unwrap(), ["a/b.txt", "e.txt"]);
    let folder = s.local_path("a/c").expect("a folder store");
    assert!(!folder.exists(), "an emptied folder goes");
}

#[test]
fn create_if_absent_has_exactly_one_winner() {
    let (_dir, s) = store();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let body = format!("writer {i}");
                    usize::from(s.put_new("day/manifest.json", &[body.as_bytes()]).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    let kept = s.get("day/manifest.json").unwrap().unwrap();
    assert!(kept.starts_with(b"writer "));
    assert_eq!(
        s.list("day/").unwrap(),
        ["day/manifest.json"],
        "no temporary file left"
    );
}

#[test]
fn keys_cannot_leave_the_store() {
    let (_dir, s) = store();
    for key in ["../escape", "/etc/passwd", "a/../../b", "a//b", ""] {
        assert!(s.put(key, &[b"x"]).is_err(), "{key:?}");
        assert!(s.get(key).is_err(), "{key:?}");
    }
}

#[test]
fn objects_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, s) = store();
    s.put("lists/day/x.csv", &[b"household"]).unwrap();
    let path = s.local_path("lists/day/x.csv").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&s.local_path("lists").unwrap()), 0o700);
    assert_eq!(mode(&s.local_path("lists/day").unwrap()), 0o700);
}

/// A store that takes every write, as some S3-compatible servers do when
/// they ignore `If-None-Match` and `If-Match`.
#[derive(Debug, Default)]
struct Careless(std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

impl Store for Careless {
    fn put(&self, key: &str, body: &[&[u8]]) -> Result<(), StoreError> {
        let mut map = self.0.lock().unwrap();
        map.insert(key.into(), body.concat());
        Ok(())
    }

    fn put_if(
        &self,
        key: &str,
        body: &[&[u8]],
        _: Option<&Version>,
    ) -> Result<Option<Version>, StoreError> {
        self.put(key, body).map(|()| Some(Version("v".into())))
    }

    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        let map = self.0.lock().unwrap();
        Ok(map.get(key).map(|b| (b.clone(), Version("v".into()))))
    }

    fn list(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.0.lock().unwrap().keys().cloned().collect())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }

    fn location(&self, key: &str) -> String {
        format!("careless://{key}")
    }

    fn local_path(&self, _: &str) -> Option<std::path::PathBuf> {
        None
    }
}

#[test]
fn a_store_that_ignores_conditional_puts_is_refused_by_name() {
    let err = check_conditional_puts(&Careless::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ignores conditional puts"), "{text}");
    assert!(text.contains("careless://conditional-put-check/"), "{text}");
    let (_dir, folder) = store();
    check_conditional_puts(&*folder).expect("a folder honours them");
}
