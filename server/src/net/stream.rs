//! The connection's socket: plain TCP, or TLS over it, behind one readiness-style interface
//! (`readable`/`try_read_buf`, `writable`/`try_write`) so the connection task's loop is the
//! same for both.
//!
//! The TLS handshake is rustls's, driven by tokio-rustls on the connection's own task; after it
//! the rustls connection is taken out of tokio-rustls and fed straight from the socket, so an
//! idle TLS connection keeps what rustls keeps (its state and a 4 KiB record buffer) and no
//! buffer of ours, as the plain one does.

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::BytesMut;
use rustls::ServerConnection;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Plaintext taken from rustls per call.
const PLAIN_CHUNK: usize = 4096;

/// An accepted connection's byte stream.
pub enum Stream {
    Plain(TcpStream, Instant),
    Tls(Box<TlsConn>, Instant),
    /// The operator's admin socket (net/admin.rs).
    Unix(tokio::net::UnixStream, Instant),
}

/// A TLS session after its handshake.
pub struct TlsConn {
    tcp: TcpStream,
    tls: ServerConnection,
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake in time")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl Stream {
    /// A plain connection accepted at `accepted`.
    pub fn plain(tcp: TcpStream, accepted: Instant) -> Stream {
        Stream::Plain(tcp, accepted)
    }

    /// Runs the server side of a TLS handshake on `tcp`, failing at `deadline`.
    pub async fn tls(
        tcp: TcpStream,
        acceptor: &TlsAcceptor,
        accepted: Instant,
        deadline: Instant,
    ) -> Result<Stream, HandshakeError> {
        let stream = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
            .await
            .map_err(|_| HandshakeError::Timeout)?
            .map_err(HandshakeError::Failed)?;
        let (tcp, tls) = stream.into_inner();
        Ok(Stream::Tls(Box::new(TlsConn { tcp, tls }), accepted))
    }

    /// When the TCP connection was accepted: the Hello deadline counts from here, so a slow
    /// handshake (or PROXY header) uses up the time a client has to say Hello.
    pub fn accepted_at(&self) -> Instant {
        match self {
            Stream::Plain(_, at) | Stream::Tls(_, at) | Stream::Unix(_, at) => *at,
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(..))
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(tcp, _) => Some(tcp),
            Stream::Tls(c, _) => Some(&c.tcp),
            Stream::Unix(..) => None,
        }
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp().map_or(Ok(()), |t| t.set_nodelay(on))
    }

    /// Waits until `try_read_buf` may have something: for TLS, at once if rustls already holds
    /// decrypted bytes (they may have arrived with the handshake's last flight) or the peer's
    /// close_notify.
    pub async fn readable(&self) -> io::Result<()> {
        if let Stream::Tls(c, _) = self
            && !c.tls.wants_read()
        {
            return Ok(());
        }
        match (self, self.tcp()) {
            (Stream::Unix(u, _), _) => u.readable().await,
            (_, Some(tcp)) => tcp.readable().await,
            (_, None) => Ok(()),
        }
    }

    /// Waits until the socket takes bytes.
    pub async fn writable(&self) -> io::Result<()> {
        match (self, self.tcp()) {
            (Stream::Unix(u, _), _) => u.writable().await,
            (_, Some(tcp)) => tcp.writable().await,
            (_, None) => Ok(()),
        }
    }

    /// Appends what can be read now to `buf`. `Ok(0)` at the end of the stream, `WouldBlock`
    /// when nothing is there.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp, _) => tcp.try_read_buf(buf),
            Stream::Tls(c, _) => c.try_read_buf(buf),
            Stream::Unix(u, _) => u.try_read_buf(buf),
        }
    }

    /// Writes some of `data` now; `WouldBlock` when the socket takes nothing. For TLS the bytes
    /// taken may wait, encrypted, in rustls: see [`Stream::pending_output`].
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp, _) => tcp.try_write(data),
            Stream::Tls(c, _) => c.try_write(data),
            Stream::Unix(u, _) => u.try_write(data),
        }
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn pending_output(&self) -> bool {
        match self {
            Stream::Plain(..) | Stream::Unix(..) => false,
            Stream::Tls(c, _) => c.tls.wants_write(),
        }
    }

    /// Writes waiting encrypted bytes; `Ok(true)` once none is left.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Stream::Plain(..) | Stream::Unix(..) => Ok(true),
            Stream::Tls(c, _) => c.flush_tls(),
        }
    }
}

impl TlsConn {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            let start = buf.len();
            buf.resize(start + PLAIN_CHUNK, 0);
            let got = self.tls.reader().read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                // Ok(0): the peer's close_notify.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without a close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.tls.read_tls(&mut TryIo(&self.tcp))? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.tls.process_new_packets() {
                // rustls queued an alert saying why; it is worth one try.
                let _ = self.flush_tls();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // A key update asks for one in return.
            if self.tls.wants_write() {
                self.flush_tls()?;
            }
        }
    }

    fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Encrypt more only once the socket took the last records: rustls's queue stays short.
        if !self.flush_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(data)?;
        self.flush_tls()?;
        Ok(n)
    }

    fn flush_tls(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut TryIo(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Drop for TlsConn {
    fn drop(&mut self) {
        // A close_notify tells the client the end is deliberate, not a truncation; one try.
        self.tls.send_close_notify();
        let _ = self.flush_tls();
    }
}

/// The socket as `Read`/`Write` without blocking, for rustls's `read_tls`/`write_tls`.
struct TryIo<'a>(&'a TcpStream);

impl Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Time left until `deadline`.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
