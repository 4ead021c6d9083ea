//! A small WebSocket client (RFC 6455), enough for the load tool: the opening
//! handshake, masked text and control frames out, and frames in (unmasked, possibly
//! fragmented). Written here rather than taken from a library so that the senders can
//! frame many requests straight into one buffer and write them with one system call,
//! and the readers can decode a whole read at once under one lock.
//!
//! [`BlockingWs`] is the blocking form used for setup (the admin session, logins and
//! subscriptions) before a connection is handed to the sender and reader threads.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::limits::{CALL_TIMEOUT, MESSAGE_BYTES_MAX};

pub(crate) const OPCODE_CONTINUATION: u8 = 0x0;
pub(crate) const OPCODE_TEXT: u8 = 0x1;
pub(crate) const OPCODE_BINARY: u8 = 0x2;
pub(crate) const OPCODE_CLOSE: u8 = 0x8;
pub(crate) const OPCODE_PING: u8 = 0x9;
pub(crate) const OPCODE_PONG: u8 = 0xA;

/// A cheap mask generator (xorshift): masking is required of clients, not secrecy.
#[derive(Debug)]
pub(crate) struct Masker(u64);

impl Masker {
    pub(crate) fn new(seed: u64) -> Masker {
        Masker(seed | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 as u32).to_le_bytes()
    }
}

/// Appends one final, masked frame with `payload` to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], masker: &mut Masker) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 0x7E);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 0x7F);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = masker.next();
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (index, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[index & 3];
    }
}

/// One frame read from the server: where its payload lies in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: (usize, usize),
    /// Bytes of the whole frame, header included.
    pub(crate) len: usize,
}

/// Decodes the frame at the start of `buffer`: `Ok(None)` when it is not all there yet.
pub(crate) fn decode_frame(buffer: &[u8]) -> anyhow::Result<Option<Frame>> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    let (first, second) = (buffer[0], buffer[1]);
    if second & 0x80 != 0 {
        bail!("the server sent a masked frame");
    }
    let (len, header) = match second & 0x7F {
        126 => {
            let Some(bytes) = buffer.get(2..4) else { return Ok(None) };
            (usize::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buffer.get(2..10) else { return Ok(None) };
            let len = u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
            (usize::try_from(len).unwrap_or(usize::MAX), 10)
        }
        len => (usize::from(len), 2),
    };
    if len > MESSAGE_BYTES_MAX {
        bail!("the server sent a frame of {len} bytes (at most {MESSAGE_BYTES_MAX} expected)");
    }
    if buffer.len() < header + len {
        return Ok(None);
    }
    Ok(Some(Frame { fin: first & 0x80 != 0, opcode: first & 0x0F, payload: (header, header + len), len: header + len }))
}

/// Reassembles fragmented messages: feed it frames, get whole text messages back.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    partial: Option<(u8, Vec<u8>)>,
}

/// What one frame amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// A whole text (or binary) message: borrowed from the buffer, or reassembled.
    Message(std::borrow::Cow<'a, [u8]>),
    Ping(&'a [u8]),
    Close,
    /// A pong, or a fragment still waiting for the rest of its message.
    Nothing,
}

impl Assembler {
    pub(crate) fn feed<'a>(&mut self, frame: Frame, buffer: &'a [u8]) -> anyhow::Result<Incoming<'a>> {
        let payload = &buffer[frame.payload.0..frame.payload.1];
        match frame.opcode {
            OPCODE_TEXT | OPCODE_BINARY if frame.fin => Ok(Incoming::Message(payload.into())),
            OPCODE_TEXT | OPCODE_BINARY => {
                self.partial = Some((frame.opcode, payload.to_vec()));
                Ok(Incoming::Nothing)
            }
            OPCODE_CONTINUATION => {
                let Some((_, data)) = self.partial.as_mut() else { bail!("a continuation frame without a start") };
                data.extend_from_slice(payload);
                if data.len() > MESSAGE_BYTES_MAX {
                    bail!("a fragmented message over {MESSAGE_BYTES_MAX} bytes");
                }
                if !frame.fin {
                    return Ok(Incoming::Nothing);
                }
                let (_, data) = self.partial.take().expect("checked above");
                Ok(Incoming::Message(data.into()))
            }
            OPCODE_PING => Ok(Incoming::Ping(payload)),
            OPCODE_PONG => Ok(Incoming::Nothing),
            OPCODE_CLOSE => Ok(Incoming::Close),
            other => bail!("unknown WebSocket opcode {other:#x}"),
        }
    }
}

/// Opens a TCP connection to `addr` and performs the WebSocket handshake for
/// `/v1/ws`. Returns the stream and any bytes read past the handshake response.
pub(crate) fn connect(addr: SocketAddr, seed: u64) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CALL_TIMEOUT).with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(CALL_TIMEOUT))?;
    let mut masker = Masker::new(seed);
    let key: Vec<u8> = (0..4).flat_map(|_| masker.next()).collect();
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        base64(&key)
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    let end = loop {
        let read = stream.read(&mut chunk).context("reading the WebSocket handshake response")?;
        if read == 0 {
            bail!("{addr} closed the connection during the WebSocket handshake");
        }
        response.extend_from_slice(&chunk[..read]);
        if let Some(at) = response.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        if response.len() > 64 * 1024 {
            bail!("{addr}: no end to the handshake response headers");
        }
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        bail!("{addr} refused the WebSocket upgrade: {status}");
    }
    Ok((stream, response[end..].to_vec()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * index)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A blocking WebSocket session for setup: one request, then its reply.
#[derive(Debug)]
pub(crate) struct BlockingWs {
    stream: TcpStream,
    buffer: Vec<u8>,
    masker: Masker,
    assembler: Assembler,
    next_id: u64,
    /// Messages that arrived while waiting for a reply (pushes, market data).
    pub(crate) skipped: u64,
}

impl BlockingWs {
    pub(crate) fn connect(addr: SocketAddr, seed: u64) -> anyhow::Result<BlockingWs> {
        let (stream, buffer) = connect(addr, seed)?;
        Ok(BlockingWs {
            stream,
            buffer,
            masker: Masker::new(seed.rotate_left(17)),
            assembler: Assembler::default(),
            next_id: 1,
            skipped: 0,
        })
    }

    pub(crate) fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        encode_frame(&mut frame, OPCODE_TEXT, text.as_bytes(), &mut self.masker);
        self.stream.write_all(&frame).context("writing to the WebSocket")
    }

    /// The next whole text message, answering pings; fails at `deadline`.
    pub(crate) fn recv(&mut self, deadline: Instant) -> anyhow::Result<Vec<u8>> {
        loop {
            while let Some(frame) = decode_frame(&self.buffer)? {
                let incoming = self.assembler.feed(frame, &self.buffer)?;
                let outcome = match incoming {
                    Incoming::Message(message) => Some(Ok(message.into_owned())),
                    Incoming::Ping(payload) => {
                        let mut pong = Vec::new();
                        encode_frame(&mut pong, OPCODE_PONG, payload, &mut self.masker);
                        self.stream.write_all(&pong)?;
                        None
                    }
                    Incoming::Close => Some(Err(anyhow::anyhow!("the server closed the WebSocket"))),
                    Incoming::Nothing => None,
                };
                self.buffer.drain(..frame.len);
                if let Some(outcome) = outcome {
                    return outcome;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no reply from the server within {CALL_TIMEOUT:?}");
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0_u8; 16 * 1024];
            let read = self.stream.read(&mut chunk).context("reading from the WebSocket")?;
            if read == 0 {
                bail!("the server closed the connection");
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// Sends `request` with a fresh numeric id and returns the reply with that id
    /// (other messages in between are counted in `skipped`). The reply may say
    /// `"ok": false`: the caller decides.
    pub(crate) fn call(&mut self, mut request: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = Value::from(id);
        self.send_text(&request.to_string())?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let message = self.recv(deadline)?;
            let reply: Value = serde_json::from_slice(&message).context("a reply that is not JSON")?;
            if reply.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(reply);
            }
            self.skipped += 1;
        }
    }

    /// As `call`, but an `"ok": false` reply is an error naming the op and the code.
    pub(crate) fn call_ok(&mut self, request: Value) -> anyhow::Result<Value> {
        let op = request.get("op").and_then(Value::as_str).unwrap_or("?").to_owned();
        let reply = self.call(request)?;
        if reply.get("ok").and_then(Value::as_bool) != Some(true) {
            bail!("{op} failed: {}", reply.get("error").map_or_else(|| reply.to_string(), Value::to_string));
        }
        Ok(reply)
    }

    /// The stream and the bytes already read but not yet decoded, for the reader.
    pub(crate) fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_decoder_and_fragments_reassemble() {
        let mut masker = Masker::new(7);
        let mut out = Vec::new();
        encode_frame(&mut out, OPCODE_TEXT, b"hello", &mut masker);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        let mask = [out[2], out[3], out[4], out[5]];
        let unmasked: Vec<u8> = out[6..].iter().enumerate().map(|(index, byte)| byte ^ mask[index & 3]).collect();
        assert_eq!(unmasked, b"hello");

        // Server frames are unmasked: a fragmented text message, then a ping.
        let mut server = vec![0x01, 3, b'a', b'b', b'c', 0x80, 2, b'd', b'e', 0x89, 0];
        let mut assembler = Assembler::default();
        let first = decode_frame(&server).unwrap().unwrap();
        assert_eq!(assembler.feed(first, &server).unwrap(), Incoming::Nothing);
        server.drain(..first.len);
        let second = decode_frame(&server).unwrap().unwrap();
        assert_eq!(assembler.feed(second, &server).unwrap(), Incoming::Message(b"abcde".to_vec().into()));
        server.drain(..second.len);
        let ping = decode_frame(&server).unwrap().unwrap();
        assert_eq!(assembler.feed(ping, &server).unwrap(), Incoming::Ping(&[]));
        assert_eq!(decode_frame(&[0x81, 126, 0]).unwrap(), None, "a header still incomplete");
        assert!(decode_frame(&[0x81, 0x85]).is_err(), "servers never mask");
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
