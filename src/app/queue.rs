//! The outbox as a queue (cli.md "The outbox: nothing is lost"): every message that was built
//! but not delivered, as the bytes that would be sent, beside a `.json` sidecar ([`Record`]).
//!
//! - `DIR/NAME.eml` + `DIR/NAME.json`: waiting (`pending` recipients still to deliver);
//! - `DIR/failed/`: refused for good (5xx), with the reply; never retried by itself;
//! - `DIR/unconfirmed/`: the end of the data went out and its reply never came.
//!
//! Every write is atomic (temporary file, fsync, rename, fsync of the folder), the message
//! before its sidecar, so a record never names bytes that are not there; a flush holds
//! `DIR/.lock` ([`Store::try_lock`]) so two flushes never send the same message. Before a
//! flush starts a transaction it marks the record `sending`; a record still marked when the
//! next flush looks was cut off mid-transaction and may have been delivered, so it goes to
//! `unconfirmed/` instead of being sent twice.
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::message::{HeaderField, MessageError, Outgoing};

/// The sidecar of one kept message. No credential is ever in it: only envelope, state and
/// what the server said. Times are seconds since the Unix epoch (UTC).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub message_id: Option<String>,
    /// MAIL FROM, as an address.
    pub envelope_from: String,
    /// The recipients this copy is still about: to deliver (waiting), refused (failed/), or
    /// possibly delivered (unconfirmed/).
    pub pending: Vec<String>,
    /// Recipients that accepted it already: never sent it again.
    #[serde(default)]
    pub delivered: Vec<String>,
    /// Recipients refused for good, with the reply.
    #[serde(default)]
    pub refused: Vec<Refusal>,
    pub created_at: u64,
    /// Nanoseconds since the epoch when it was kept: orders messages of the same second.
    #[serde(default)]
    pub created_ns: u64,
    /// Delivery attempts made at a server.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub next_attempt_at: u64,
    /// The server it was built for (`host:port`), when one was configured.
    #[serde(default)]
    pub server: Option<String>,
    /// MAIL FROM needs SMTPUTF8 / BODY=8BITMIME for these bytes.
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default)]
    pub eight_bit_mime: bool,
    /// Set while a flush has a transaction open for it (see the module docs).
    #[serde(default)]
    pub sending_since: Option<u64>,
}

/// A recipient refused for good and what the server said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub address: String,
    pub reply: String,
}

/// The three folders of the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folder {
    Waiting,
    Failed,
    Unconfirmed,
}

impl Folder {
    fn sub(self) -> Option<&'static str> {
        match self {
            Folder::Waiting => None,
            Folder::Failed => Some("failed"),
            Folder::Unconfirmed => Some("unconfirmed"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Folder::Waiting => "waiting",
            Folder::Failed => "failed",
            Folder::Unconfirmed => "unconfirmed",
        }
    }
}

/// After the n-th temporary failure the next attempt waits 1, 5, 15, 60 minutes, then an hour.
pub fn retry_delay(failures: u32) -> Duration {
    let minutes = match failures {
        0 => 0,
        1 => 1,
        2 => 5,
        3 => 15,
        _ => 60,
    };
    Duration::from_secs(minutes * 60)
}

/// `--max-age`: `90s`, `30m`, `12h`, `5d` (a bare number is seconds).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not an age: give a number and s, m, h or d (5d)"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d (5d)")),
    };
    n.checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long an age"))
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One kept message: its file name without extension, and its sidecar.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub record: Record,
}

/// The outbox folder.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Held while a flush works on the folder; dropping it (or the process dying) releases it.
pub struct Lock {
    _file: File,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn folder(&self, folder: Folder) -> PathBuf {
        match folder.sub() {
            Some(sub) => self.dir.join(sub),
            None => self.dir.clone(),
        }
    }

    pub fn message_path(&self, folder: Folder, name: &str) -> PathBuf {
        self.folder(folder).join(format!("{name}.eml"))
    }

    fn record_path(&self, folder: Folder, name: &str) -> PathBuf {
        self.folder(folder).join(format!("{name}.json"))
    }

    fn error(&self, what: &Path, source: io::Error) -> Error {
        Error::Output {
            what: format!("the outbox: {}", what.display()),
            source,
        }
    }

    /// Takes the folder's lock without waiting; `None` when another flush holds it.
    pub fn try_lock(&self) -> Result<Option<Lock>, Error> {
        self.create(Folder::Waiting)?;
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.error(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(self.error(&path, e)),
        }
    }

    fn create(&self, folder: Folder) -> Result<PathBuf, Error> {
        let dir = self.folder(folder);
        fs::create_dir_all(&dir).map_err(|e| self.error(&dir, e))?;
        Ok(dir)
    }

    /// A name not yet taken in `folder` (the same message can be there twice: two recipients
    /// refused at two different times).
    pub fn free_name(&self, folder: Folder, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 1;
        while self.message_path(folder, &name).exists() || self.record_path(folder, &name).exists()
        {
            n += 1;
            name = format!("{base}-{n}");
        }
        name
    }

    /// Keeps a message and its record in `folder` under `name`; returns the message's path.
    pub fn put(
        &self,
        folder: Folder,
        name: &str,
        msg: &dyn Outgoing,
        record: &Record,
    ) -> Result<PathBuf, Error> {
        let dir = self.create(folder)?;
        let path = self.message_path(folder, name);
        atomic_write(&dir, &path, &mut |w| msg.write_to(w)).map_err(|e| self.error(&path, e))?;
        self.write_record(folder, name, record)?;
        Ok(path)
    }

    /// Replaces the sidecar (atomically).
    pub fn write_record(&self, folder: Folder, name: &str, record: &Record) -> Result<(), Error> {
        let dir = self.create(folder)?;
        let path = self.record_path(folder, name);
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::Internal(format!("the outbox record: {e}")))?;
        atomic_write(&dir, &path, &mut |w| {
            w.write_all(&json)?;
            w.write_all(b"\n")
        })
        .map_err(|e| self.error(&path, e))
    }

    /// Removes a message: the sidecar first, so nothing ever names a missing message as
    /// waiting; a message file left behind alone is listed as an orphan, never sent.
    pub fn remove(&self, folder: Folder, name: &str) -> Result<(), Error> {
        for path in [
            self.record_path(folder, name),
            self.message_path(folder, name),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error(&path, e)),
            }
        }
        let dir = self.folder(folder);
        sync_dir(&dir).map_err(|e| self.error(&dir, e))
    }

    /// The messages of a folder, oldest first (creation time, then name). A sidecar whose
    /// message is missing is skipped; one that does not parse is an error naming it.
    pub fn list(&self, folder: Folder) -> Result<Vec<Entry>, Error> {
        let dir = self.folder(folder);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(&dir, e)),
        };
        let mut entries = Vec::new();
        for item in read {
            let item = item.map_err(|e| self.error(&dir, e))?;
            let file = item.file_name();
            let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if name.starts_with('.') || !self.message_path(folder, name).is_file() {
                continue;
            }
            let record = self.read_record(folder, name)?;
            entries.push(Entry {
                name: name.to_owned(),
                record,
            });
        }
        entries.sort_by_key(|e| (e.record.created_at, e.record.created_ns, e.name.clone()));
        Ok(entries)
    }

    /// Message files without a sidecar (a crash between the two writes): never sent.
    pub fn orphans(&self, folder: Folder) -> Vec<PathBuf> {
        let Ok(read) = fs::read_dir(self.folder(folder)) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = read
            .flatten()
            .filter_map(|i| {
                let name = i.file_name().to_str()?.strip_suffix(".eml")?.to_owned();
                (!self.record_path(folder, &name).exists()).then(|| i.path())
            })
            .collect();
        out.sort();
        out
    }

    pub fn read_record(&self, folder: Folder, name: &str) -> Result<Record, Error> {
        let path = self.record_path(folder, name);
        let text = fs::read(&path).map_err(|source| Error::Input {
            what: format!("the outbox record {}", path.display()),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| {
            Error::Data(format!(
                "the outbox record {} cannot be read: {e}",
                path.display()
            ))
        })
    }

    pub fn read_message(
        &self,
        folder: Folder,
        name: &str,
        record: &Record,
    ) -> Result<Stored, Error> {
        let path = self.message_path(folder, name);
        let bytes = fs::read(&path).map_err(|source| Error::Input {
            what: format!("the outbox message {}", path.display()),
            source,
        })?;
        Ok(Stored {
            bytes: Arc::new(bytes),
            message_id: record.message_id.clone(),
            smtputf8: record.smtputf8,
            eight_bit_mime: record.eight_bit_mime,
        })
    }
}

/// Writes `path` through a temporary file in `dir`: write, fsync, rename, fsync the folder, so
/// a crash leaves the old file or the new one, never half of one.
fn atomic_write(
    dir: &Path,
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("message");
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A kept message, sent again exactly as it was stored: never rebuilt and never signed again
/// (a DKIM signature made when it was built is part of its bytes).
#[derive(Clone, Debug)]
pub struct Stored {
    bytes: Arc<Vec<u8>>,
    message_id: Option<String>,
    smtputf8: bool,
    eight_bit_mime: bool,
}

impl Outgoing for Stored {
    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(&self.bytes)
    }

    fn headers(&self) -> &[HeaderField] {
        &[]
    }

    fn write_body(&self, w: &mut dyn Write) -> io::Result<()> {
        let at = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.bytes.len(), |i| i + 4);
        w.write_all(&self.bytes[at..])
    }

    fn prepend_header(&mut self, name: &str, _value: &str) -> Result<(), MessageError> {
        Err(MessageError::BadHeader {
            name: name.to_owned(),
            reason: "a kept message is sent as it was stored".into(),
        })
    }

    fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    fn needs_smtputf8(&self) -> bool {
        self.smtputf8
    }

    fn needs_8bitmime(&self) -> bool {
        self.eight_bit_mime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> Stored {
        Stored {
            bytes: Arc::new(text.as_bytes().to_vec()),
            message_id: Some("<a@x.test>".into()),
            smtputf8: false,
            eight_bit_mime: false,
        }
    }

    fn record(created_at: u64) -> Record {
        Record {
            message_id: Some("<a@x.test>".into()),
            envelope_from: "q@x.test".into(),
            pending: vec!["ada@x.test".into()],
            created_at,
            next_attempt_at: created_at,
            ..Record::default()
        }
    }

    #[test]
    fn a_kept_message_reads_back_byte_for_byte_in_creation_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("outbox"));
        let msg = stored("Subject: x\r\n\r\nbody\r\n");
        store.put(Folder::Waiting, "b", &msg, &record(20)).unwrap();
        store.put(Folder::Waiting, "a", &msg, &record(30)).unwrap();
        store.put(Folder::Failed, "c", &msg, &record(10)).unwrap();
        let names: Vec<String> = store
            .list(Folder::Waiting)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["b", "a"]);
        let entry = &store.list(Folder::Waiting).unwrap()[0];
        assert_eq!(entry.record, record(20));
        let back = store
            .read_message(Folder::Waiting, "b", &entry.record)
            .unwrap();
        let mut out = Vec::new();
        back.write_to(&mut out).unwrap();
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(store.list(Folder::Failed).unwrap().len(), 1);
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
        store.remove(Folder::Waiting, "b").unwrap();
        assert_eq!(store.list(Folder::Waiting).unwrap().len(), 1);
        assert!(!store.message_path(Folder::Waiting, "b").exists());
    }

    #[test]
    fn a_message_without_its_sidecar_is_an_orphan_and_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(dir.path().join("lone.eml"), b"x").unwrap();
        fs::write(dir.path().join("ghost.json"), b"{}").unwrap();
        assert!(store.list(Folder::Waiting).unwrap().is_empty());
        assert_eq!(
            store.orphans(Folder::Waiting),
            [dir.path().join("lone.eml")]
        );
    }

    #[test]
    fn a_broken_sidecar_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(dir.path().join("m.eml"), b"x").unwrap();
        fs::write(dir.path().join("m.json"), b"{not json").unwrap();
        let e = store.list(Folder::Waiting).unwrap_err();
        assert!(e.to_string().contains("m.json"), "{e}");
    }

    #[test]
    fn the_lock_is_held_by_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let first = store.try_lock().unwrap();
        assert!(first.is_some());
        assert!(store.try_lock().unwrap().is_none());
        drop(first);
        assert!(store.try_lock().unwrap().is_some());
    }

    #[test]
    fn a_folder_that_cannot_be_written_is_exit_73() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let store = Store::new(&blocker);
        let e = store
            .put(Folder::Waiting, "m", &stored("x"), &record(1))
            .unwrap_err();
        assert_eq!(e.exit_code(), 73);
        assert!(e.to_string().contains("the outbox"), "{e}");
    }

    #[test]
    fn names_are_not_reused_and_the_schedule_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store
            .put(Folder::Failed, "m", &stored("x"), &record(1))
            .unwrap();
        assert_eq!(store.free_name(Folder::Failed, "m"), "m-2");
        assert_eq!(store.free_name(Folder::Waiting, "m"), "m");
        let minutes: Vec<u64> = (1..=6).map(|n| retry_delay(n).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 5, 15, 60, 60, 60]);
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("5d").unwrap(), Duration::from_secs(5 * 86_400));
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_age("5w").is_err());
        assert!(parse_age("d").is_err());
    }

    #[test]
    fn the_body_of_a_stored_message_follows_the_blank_line() {
        let mut out = Vec::new();
        stored("A: b\r\n\r\nbody\r\n").write_body(&mut out).unwrap();
        assert_eq!(out, b"body\r\n");
    }
}
