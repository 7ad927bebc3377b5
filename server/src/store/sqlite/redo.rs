//! The embedded store's redo log: what makes an acknowledged write durable.
//!
//! SQLite writes every page a transaction dirtied to its WAL at commit. A send dirties three to
//! five pages in different B-trees (its thread's newest leaf, its device's dedupe keys, the
//! thread and member rows), so a commit per batch of sends costs ~5 page writes per send, half
//! of the writer's time. Instead the writer keeps one SQLite transaction open across many
//! batches and makes each batch durable by appending the statements it ran (with their bound
//! values) to this log and syncing it: one write and one `fdatasync` per batch, a few hundred
//! bytes per send. SQLite commits every [`super::sqlite`] interval or when a reader needs the
//! data; a page then hits the WAL once for all the sends that touched it.
//!
//! After a crash, the statements of the batches the database did not commit are run again, in
//! order, on the state they first ran on: the database's last commit, which records the last
//! batch it holds. SQL in this store takes its inputs only from bound values (no `random()`, no
//! clock), so the replay yields the same rows; each statement's affected-row count is logged
//! and checked to catch a divergence.
//!
//! File: a 20-byte header (magic, epoch, CRC-32 of both), then records: payload length (u32),
//! CRC-32 of the payload (u32), payload. A payload is a batch number (u64) and entries: a
//! statement text's first use in the file (tag 0, id, text) or a statement (tag 1, id, affected
//! rows, values). All integers little-endian. Reading stops at the first record that is cut
//! short or fails its CRC: a write the crash interrupted, never acknowledged.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Param, StoreError, StoreResult};

const MAGIC: &[u8; 8] = b"CFBREDO1";
const HEADER_LEN: usize = 20;
/// A record larger than this is taken for garbage: a batch is at most a few thousand jobs.
const RECORD_MAX: usize = 512 << 20;

const TAG_TEXT: u8 = 0;
const TAG_STMT: u8 = 1;

const VAL_NULL: u8 = 0;
const VAL_INT: u8 = 1;
const VAL_TEXT: u8 = 2;
const VAL_BLOB: u8 = 3;

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("redo log {}: {e}", path.display()))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redo log: {what}"))
}

/// Encodes the statements of the batch being run. Statement texts get ids in first-use order
/// per log file; a job whose statements are dropped (its savepoint rolled back) also forgets
/// the ids it introduced, so every id the log uses is defined in it.
#[derive(Default)]
pub struct Encoder {
    ids: HashMap<(usize, usize), u32>,
    texts: Vec<&'static str>,
    buf: Vec<u8>,
}

/// A point in the batch to drop back to.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    len: usize,
    texts: usize,
}

impl Encoder {
    /// Starts the payload of batch `batch`.
    pub fn begin(&mut self, batch: u64) {
        self.buf.clear();
        self.buf.extend_from_slice(&batch.to_le_bytes());
    }

    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            texts: self.texts.len(),
        }
    }

    /// Drops what was encoded since `m`.
    pub fn truncate(&mut self, m: Mark) {
        self.buf.truncate(m.len);
        for t in self.texts.drain(m.texts..) {
            self.ids.remove(&(t.as_ptr() as usize, t.len()));
        }
    }

    /// Forgets every statement text: a new log file defines them again.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.texts.clear();
        self.buf.clear();
    }

    /// The texts known so far, by id (to replay this file's batches from memory).
    pub fn texts(&self) -> &[&'static str] {
        &self.texts
    }

    /// Records a statement that changed `affected` rows.
    pub fn stmt(&mut self, sql: &'static str, params: &[Param<'_>], affected: usize) {
        let key = (sql.as_ptr() as usize, sql.len());
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.texts.len() as u32;
                self.ids.insert(key, id);
                self.texts.push(sql);
                self.buf.push(TAG_TEXT);
                self.buf.extend_from_slice(&id.to_le_bytes());
                put_bytes(&mut self.buf, sql.as_bytes());
                id
            }
        };
        self.buf.push(TAG_STMT);
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf
            .extend_from_slice(&(affected.min(u32::MAX as usize) as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(params.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for p in params.iter().take(u16::MAX as usize) {
            match *p {
                Param::Null => self.buf.push(VAL_NULL),
                Param::Int(v) => {
                    self.buf.push(VAL_INT);
                    self.buf.extend_from_slice(&v.to_le_bytes());
                }
                Param::Text(s) => {
                    self.buf.push(VAL_TEXT);
                    put_bytes(&mut self.buf, s.as_bytes());
                }
                Param::Blob(b) => {
                    self.buf.push(VAL_BLOB);
                    put_bytes(&mut self.buf, b);
                }
            }
        }
    }

    /// The batch's payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

/// A record's checksum covers the log's epoch, so the records a reused file still holds from
/// an earlier epoch never pass for this one's.
fn record_crc(epoch: u64, payload: &[u8]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    h.update(&epoch.to_le_bytes());
    h.update(payload);
    h.finalize().to_le_bytes()
}

/// Frames a payload as a record of the log of `epoch`.
pub fn frame(epoch: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(epoch, payload));
    out.extend_from_slice(payload);
}

/// A statement read back from a payload.
pub struct Stmt<'a> {
    pub text: u32,
    pub affected: usize,
    pub params: Vec<Param<'a>>,
}

/// An entry of a payload.
pub enum Entry<'a> {
    /// A statement text's first use in the file.
    Text(u32, &'a str),
    Stmt(Stmt<'a>),
}

/// Reads a payload: its batch number and its entries.
pub fn decode(payload: &[u8]) -> StoreResult<(u64, Vec<Entry<'_>>)> {
    let mut r = Reader(payload);
    let batch = r.u64()?;
    let mut out = Vec::new();
    while !r.0.is_empty() {
        match r.u8()? {
            TAG_TEXT => {
                let id = r.u32()?;
                let text = std::str::from_utf8(r.bytes()?)
                    .map_err(|_| corrupt("statement text is not UTF-8"))?;
                out.push(Entry::Text(id, text));
            }
            TAG_STMT => {
                let text = r.u32()?;
                let affected = r.u32()? as usize;
                let n = r.u16()?;
                let mut params = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    params.push(match r.u8()? {
                        VAL_NULL => Param::Null,
                        VAL_INT => Param::Int(r.u64()? as i64),
                        VAL_TEXT => Param::Text(
                            std::str::from_utf8(r.bytes()?)
                                .map_err(|_| corrupt("a text value is not UTF-8"))?,
                        ),
                        VAL_BLOB => Param::Blob(r.bytes()?),
                        _ => return Err(corrupt("unknown value tag")),
                    });
                }
                out.push(Entry::Stmt(Stmt {
                    text,
                    affected,
                    params,
                }));
            }
            _ => return Err(corrupt("unknown entry tag")),
        }
    }
    Ok((batch, out))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("entry cut short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> StoreResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> StoreResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> StoreResult<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> StoreResult<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> StoreResult<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The framed records in `buf`, each as (CRC, payload), up to the first that cannot be one
/// (too short, or a length out of range). The caller checks the CRCs.
pub fn records(mut buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let head = buf.get(..8)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = [head[4], head[5], head[6], head[7]];
        if !(8..=RECORD_MAX).contains(&len) {
            return None;
        }
        let payload = buf.get(8..8 + len)?;
        buf = &buf[8 + len..];
        Some((crc, payload))
    })
}

/// What a log file held when the store opened.
pub struct Contents {
    pub epoch: u64,
    /// The payloads of the intact records, in order.
    pub payloads: Vec<Vec<u8>>,
}

/// Reads the log at `path`; `None` if there is none.
pub fn read(path: &Path) -> StoreResult<Option<Contents>> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data).map_err(|e| io_err(path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    }
    if data.len() < HEADER_LEN {
        // Created but its header never reached the disk: it held nothing acknowledged.
        return Ok(None);
    }
    let (head, rest) = data.split_at(HEADER_LEN);
    if &head[..8] != MAGIC {
        return Err(corrupt("not a confab redo log"));
    }
    if crc32fast::hash(&head[..16]).to_le_bytes() != head[16..20] {
        return Err(corrupt("header fails its checksum"));
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&head[8..16]);
    let epoch = u64::from_le_bytes(epoch);
    // The end: zeros where the file was laid out, an earlier epoch's records, or a write
    // the crash cut short.
    let payloads = records(rest)
        .take_while(|(crc, payload)| record_crc(epoch, payload) == *crc)
        .map(|(_, payload)| payload.to_vec())
        .collect();
    Ok(Some(Contents { epoch, payloads }))
}

/// The log being appended to. The file is laid out (written with zeros, synced) once to its
/// full size and then reused: each epoch writes its header over the start and its records
/// over the last epoch's. Overwriting blocks the file already owns makes `fdatasync` flush
/// just those pages; an appended block would also need a journal commit, and under ext4's
/// ordered mode that flushes every other file's pending data too (the WAL's, tens of
/// milliseconds).
pub struct Log {
    path: PathBuf,
    file: std::sync::Arc<File>,
    epoch: u64,
    len: u64,
}

impl Log {
    /// Opens (creating and laying out if needed) the log at `path` for a new epoch; what it
    /// held before must be in the database already.
    pub fn start(path: &Path, epoch: u64, size: u64) -> StoreResult<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let have = file.metadata().map_err(|e| io_err(path, e))?.len();
        if have < size {
            let zeros = vec![0u8; 1 << 20];
            let mut at = have;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)
                    .map_err(|e| io_err(path, e))?;
                at += n as u64;
            }
            file.sync_all().map_err(|e| io_err(path, e))?;
            sync_dir(path)?;
        }
        let mut log = Self {
            path: path.to_owned(),
            file: std::sync::Arc::new(file),
            epoch,
            len: 0,
        };
        log.restart(epoch)?;
        Ok(log)
    }

    /// Starts epoch `epoch` at the start of the file (synced before it returns).
    pub fn restart(&mut self, epoch: u64) -> StoreResult<()> {
        let mut head = Vec::with_capacity(HEADER_LEN);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&epoch.to_le_bytes());
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_le_bytes());
        self.file
            .write_all_at(&head, 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_err(&self.path, e))?;
        self.epoch = epoch;
        self.len = HEADER_LEN as u64;
        Ok(())
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes written in this epoch.
    pub fn written(&self) -> u64 {
        self.len
    }

    /// The file, for the thread that syncs it.
    pub fn file(&self) -> std::sync::Arc<File> {
        self.file.clone()
    }

    /// Writes framed records after the last (one write).
    pub fn append(&mut self, records: &[u8]) -> StoreResult<()> {
        self.file
            .write_all_at(records, self.len)
            .map_err(|e| io_err(&self.path, e))?;
        self.len += records.len() as u64;
        Ok(())
    }
}

fn sync_dir(path: &Path) -> StoreResult<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("confab-redo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log");
        let mut log = Log::start(&path, 7, 4096).expect("create");
        let mut enc = Encoder::default();
        let sql: &'static str = "UPDATE t SET a = ?1 WHERE b = ?2";
        enc.begin(1);
        enc.stmt(
            sql,
            &[Param::Int(-5), Param::Text("héllo 你好"), Param::Null],
            1,
        );
        let m = enc.mark();
        enc.stmt("DELETE FROM u WHERE x = ?1", &[Param::Blob(b"\0\x01")], 2);
        enc.truncate(m);
        let mut rec = Vec::new();
        frame(7, enc.payload(), &mut rec);
        enc.begin(2);
        enc.stmt(sql, &[Param::Blob(b"\xff")], 3);
        frame(7, enc.payload(), &mut rec);
        log.append(&rec).expect("append");
        // Half a record more, as a crash mid-write leaves it.
        let mut torn = Vec::new();
        frame(7, enc.payload(), &mut torn);
        log.append(&torn[..torn.len() / 2]).expect("append");

        let c = read(&path).expect("read").expect("a log");
        assert_eq!(c.epoch, 7);
        assert_eq!(c.payloads.len(), 2);
        let mut texts: Vec<&str> = Vec::new();
        let mut seen = Vec::new();
        for (i, p) in c.payloads.iter().enumerate() {
            let (batch, entries) = decode(p).expect("decode");
            assert_eq!(batch, i as u64 + 1);
            for e in entries {
                match e {
                    Entry::Text(id, t) => {
                        assert_eq!(id as usize, texts.len());
                        texts.push(t);
                    }
                    Entry::Stmt(s) => seen.push((s.text, s.affected, format!("{:?}", s.params))),
                }
            }
        }
        // The dropped statement's text was forgotten with it, so ids stay dense.
        assert_eq!(texts, vec![sql]);
        assert_eq!(
            seen,
            vec![
                (0, 1, r#"[Int(-5), Text("héllo 你好"), Null]"#.to_owned()),
                (0, 3, "[Blob([255])]".to_owned()),
            ]
        );
        // The file keeps its laid-out size; a new epoch starts over it, and the records the
        // last epoch left behind its header are not read as its own.
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 4096);
        let mut log = Log::start(&path, 8, 4096).expect("reopen");
        assert_eq!(read(&path).expect("read").expect("a log").payloads.len(), 0);
        log.append(&rec).expect("append");
        assert_eq!(read(&path).expect("read").expect("a log").payloads.len(), 0);
        let mut rec8 = Vec::new();
        frame(8, enc.payload(), &mut rec8);
        log.append(&rec8).expect("append");
        log.restart(8).expect("restart");
        log.append(&rec8).expect("append");
        let c = read(&path).expect("read").expect("a log");
        assert_eq!((c.epoch, c.payloads.len()), (8, 1));
        // A flipped byte in a record ends the log there.
        let mut bytes = std::fs::read(&path).expect("read file");
        bytes[HEADER_LEN + 9] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write file");
        let c = read(&path).expect("read").expect("a log");
        assert_eq!(c.payloads.len(), 0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_file_that_is_not_a_redo_log_is_refused_with_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("confab-redo-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log");
        // Shorter than a header: created, never written; it held nothing acknowledged.
        std::fs::write(&path, b"CFB").expect("write");
        assert!(read(&path).expect("read").is_none());
        // Someone else's file.
        std::fs::write(&path, [b'x'; 64]).expect("write");
        assert!(matches!(read(&path), Err(StoreError::Corrupt(_))));
        // A header whose checksum fails.
        Log::start(&path, 3, 64).expect("create");
        let mut bytes = std::fs::read(&path).expect("read file");
        bytes[10] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(&path), Err(StoreError::Corrupt(_))));
        // A payload that decodes to garbage.
        assert!(matches!(decode(&[1, 2, 3]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode(&[0, 0, 0, 0, 0, 0, 0, 0, 9]),
            Err(StoreError::Corrupt(_))
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
