//! The tag=value codec: framing a byte stream into messages (`Framer`), splitting a
//! frame into fields (`Message`), and encoding (`OutMessage` + `Encoder`).
//!
//! Framing starts at `8=FIX`, reads BodyLength (9) and expects CheckSum (10) right after
//! the body it announces. A frame whose BodyLength or CheckSum is wrong is consumed up to
//! the next `<SOH>10=…<SOH>` after the announced end and reported as garbled: the
//! session ignores it, as the FIX spec says (its sequence number is then requested
//! again). Nothing here allocates per message once the buffers have grown: the framer
//! keeps one read buffer, a `Message` reuses its byte and field vectors, the encoder
//! its scratch buffer.

use std::fmt;
use std::io::Write as _;
use std::ops::Range;

use smallvec::SmallVec;
use thiserror::Error;

use super::limits::{BEGIN_STRING_BYTES_MAX, MESSAGE_BYTES_MAX, READ_CHUNK_BYTES};
use super::tags::{self, Tag};

/// The field delimiter.
pub const SOH: u8 = 0x01;

/// Why a frame was not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Garble {
    #[error("BeginString (8) not terminated")]
    BeginString,
    #[error("BodyLength (9) missing or not a number")]
    BodyLength,
    #[error("BodyLength (9) does not match the body")]
    BodyLengthMismatch,
    #[error("CheckSum (10) is not three digits or does not match")]
    CheckSum,
    #[error("a field is not tag=value")]
    Field,
    #[error("the first three fields are not 8, 9, 35")]
    FirstFields,
}

/// What the framer found instead of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Consumed and to be ignored.
    #[error("garbled message: {0}")]
    Garbled(Garble),
    /// Cannot be framed within the size bound: the connection must end.
    #[error("message larger than {MESSAGE_BYTES_MAX} bytes")]
    TooLarge,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn find_byte(haystack: &[u8], byte: u8) -> Option<usize> {
    haystack.iter().position(|&candidate| candidate == byte)
}

/// Parses an unsigned decimal of 1 to 18 digits.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, digit| acc * 10 + u64::from(digit - b'0')))
}

/// Parses a tag: an optional `-` and 1 to 9 digits.
fn parse_tag(bytes: &[u8]) -> Option<Tag> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0, |acc: Tag, digit| acc * 10 + Tag::from(digit - b'0'));
    Some(if negative { -value } else { value })
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// The outcome of scanning the buffered bytes once.
enum Scan {
    /// Not enough bytes yet.
    Wait,
    /// Garbage only: drop the first `n` bytes.
    Discard(usize),
    /// A frame at `range`; `Err` if it is garbled (consumed all the same).
    Frame(Range<usize>, Result<(), Garble>),
    /// Not a frame after all: skip `n` bytes and report.
    Skip(usize, Garble),
    TooLarge,
}

/// Splits a byte stream into frames. Feed it with `read_buffer` (tokio `read_buf`) or
/// `extend`, then call `next_frame` until it returns `None`.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    pub fn new() -> Self {
        Framer { buf: Vec::with_capacity(READ_CHUNK_BYTES), start: 0 }
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
    }

    /// The buffer to append one read to, with room for `READ_CHUNK_BYTES`. The buffered
    /// bytes never exceed one frame bound plus one read, since `next_frame` consumes or
    /// refuses everything larger.
    pub fn read_buffer(&mut self) -> &mut Vec<u8> {
        self.compact();
        self.buf.reserve(READ_CHUNK_BYTES);
        &mut self.buf
    }

    /// Appends bytes (tests, and the leftover of a handshake).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, if a whole one is buffered.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        loop {
            match scan(&self.buf[self.start..]) {
                Scan::Wait => return None,
                Scan::Discard(count) => self.start += count,
                Scan::TooLarge => return Some(Err(FrameError::TooLarge)),
                Scan::Skip(count, garble) => {
                    self.start += count;
                    return Some(Err(FrameError::Garbled(garble)));
                }
                Scan::Frame(range, verdict) => {
                    let absolute = self.start + range.start..self.start + range.end;
                    self.start += range.end;
                    return Some(match verdict {
                        Ok(()) => Ok(&self.buf[absolute]),
                        Err(garble) => Err(FrameError::Garbled(garble)),
                    });
                }
            }
        }
    }
}

/// Where a frame begins: `8=FIX` at the start or after anything but a digit (so that
/// `58=FIX…` inside a message is not taken for one).
fn frame_begin(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = find(&data[from..], b"8=FIX") {
        let at = from + offset;
        if at == 0 || !data[at - 1].is_ascii_digit() {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn scan(data: &[u8]) -> Scan {
    let Some(begin) = frame_begin(data) else {
        // Keep what could be the start of a split `8=FIX` (and the byte before it).
        let keep = data.len().min(5);
        return if data.len() > keep { Scan::Discard(data.len() - keep) } else { Scan::Wait };
    };
    if begin > 0 {
        return Scan::Discard(begin);
    }
    let after_begin = &data[2..];
    let Some(begin_len) = find_byte(&after_begin[..after_begin.len().min(BEGIN_STRING_BYTES_MAX + 1)], SOH) else {
        return if after_begin.len() > BEGIN_STRING_BYTES_MAX {
            Scan::Skip(1, Garble::BeginString)
        } else {
            Scan::Wait
        };
    };
    let length_at = 2 + begin_len + 1;
    let rest = &data[length_at..];
    if rest.len() < 2 {
        return Scan::Wait;
    }
    if &rest[..2] != b"9=" {
        return Scan::Skip(1, Garble::BodyLength);
    }
    let digits = &rest[2..rest.len().min(2 + 11)];
    let Some(digits_len) = find_byte(digits, SOH) else {
        return if digits.len() > 10 { Scan::Skip(1, Garble::BodyLength) } else { Scan::Wait };
    };
    let Some(body_len) = parse_u64(&digits[..digits_len]) else {
        return Scan::Skip(1, Garble::BodyLength);
    };
    if body_len > MESSAGE_BYTES_MAX as u64 {
        return Scan::TooLarge;
    }
    let body_start = length_at + 2 + digits_len + 1;
    let body_end = body_start + body_len as usize;
    trailer(data, body_start, body_end)
}

/// Finds the CheckSum field of a frame whose body is announced at `body_start..body_end`.
fn trailer(data: &[u8], body_start: usize, body_end: usize) -> Scan {
    if data.len() < body_end + 3 {
        return if body_end > MESSAGE_BYTES_MAX + 64 { Scan::TooLarge } else { Scan::Wait };
    }
    if body_end > body_start && data[body_end - 1] == SOH && &data[body_end..body_end + 3] == b"10=" {
        let value_at = body_end + 3;
        let window = &data[value_at..data.len().min(value_at + 4)];
        match find_byte(window, SOH) {
            Some(value_len) => {
                let value = &window[..value_len];
                let expected = checksum(&data[..body_end]);
                let verdict = match parse_u64(value) {
                    Some(sum) if value.len() == 3 && sum == u64::from(expected) => Ok(()),
                    _ => Err(Garble::CheckSum),
                };
                return Scan::Frame(0..value_at + value_len + 1, verdict);
            }
            None if window.len() < 4 => return Scan::Wait,
            None => {}
        }
    }
    // The announced length does not end at a CheckSum: resynchronise on the next one.
    let from = body_end.max(body_start) - 1;
    if let Some(offset) = find(&data[from..], b"\x0110=") {
        let value_at = from + offset + 4;
        if let Some(value_len) = find_byte(&data[value_at..], SOH) {
            return Scan::Frame(0..value_at + value_len + 1, Err(Garble::BodyLengthMismatch));
        }
    }
    if data.len() > MESSAGE_BYTES_MAX + 64 { Scan::TooLarge } else { Scan::Wait }
}

/// One field of a parsed message: its tag, where its value lies in the message's bytes,
/// and its repeating-group depth (0 outside groups; set by validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub tag: Tag,
    start: u32,
    end: u32,
    pub depth: u8,
}

impl Field {
    pub(crate) fn value_in(self, raw: &[u8]) -> &[u8] {
        &raw[self.start as usize..self.end as usize]
    }
}

/// A field with its value, as the accessors hand it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRef<'a> {
    pub tag: Tag,
    pub value: &'a [u8],
    pub depth: u8,
}

/// A parsed inbound message: its bytes and its fields in received order. Reused from
/// message to message (`parse_from` keeps the allocations).
#[derive(Clone, Debug, Default)]
pub struct Message {
    raw: Vec<u8>,
    fields: Vec<Field>,
    body_start: usize,
    trailer_start: usize,
}

impl Message {
    /// Splits `frame` (a whole frame from the `Framer`) into fields. A DATA field whose
    /// length field comes right before it (`data_fields` lists (data tag, length tag))
    /// is read by length, so it may contain SOH.
    pub fn parse_from(&mut self, frame: &[u8], data_fields: &[(Tag, Tag)]) -> Result<(), Garble> {
        self.raw.clear();
        self.raw.extend_from_slice(frame);
        self.fields.clear();
        let raw = &self.raw;
        let mut pos = 0;
        while pos < raw.len() {
            let rest = &raw[pos..];
            let equals = find_byte(rest, b'=').ok_or(Garble::Field)?;
            if find_byte(&rest[..equals], SOH).is_some() {
                return Err(Garble::Field);
            }
            let tag = parse_tag(&rest[..equals]).ok_or(Garble::Field)?;
            let value_start = pos + equals + 1;
            let by_length = self.fields.last().and_then(|previous| {
                let (_, length_tag) = data_fields.iter().find(|(data_tag, _)| *data_tag == tag)?;
                if previous.tag != *length_tag {
                    return None;
                }
                let length = parse_u64(&raw[previous.start as usize..previous.end as usize])? as usize;
                let end = value_start.checked_add(length)?;
                (raw.get(end) == Some(&SOH)).then_some(end)
            });
            let value_end = match by_length {
                Some(end) => end,
                None => value_start + find_byte(&raw[value_start..], SOH).ok_or(Garble::Field)?,
            };
            self.fields.push(Field { tag, start: value_start as u32, end: value_end as u32, depth: 0 });
            pos = value_end + 1;
        }
        let first: SmallVec<[Tag; 3]> = self.fields.iter().take(3).map(|field| field.tag).collect();
        if first.as_slice() != [tags::BEGIN_STRING, tags::BODY_LENGTH, tags::MSG_TYPE]
            || self.fields.last().map(|field| field.tag) != Some(tags::CHECK_SUM)
        {
            return Err(Garble::FirstFields);
        }
        self.body_start = 3;
        self.trailer_start = self.fields.len() - 1;
        Ok(())
    }

    /// The message's bytes, as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn value(&self, field: &Field) -> &[u8] {
        &self.raw[field.start as usize..field.end as usize]
    }

    fn field_ref(&self, field: &Field) -> FieldRef<'_> {
        FieldRef { tag: field.tag, value: self.value(field), depth: field.depth }
    }

    pub fn begin_string(&self) -> &[u8] {
        self.fields.first().map_or(&[], |field| self.value(field))
    }

    pub fn msg_type(&self) -> &[u8] {
        self.fields.get(2).map_or(&[], |field| self.value(field))
    }

    /// The first value of `tag` outside repeating groups, anywhere in the message.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.fields.iter().find(|field| field.tag == tag && field.depth == 0).map(|field| self.value(field))
    }

    /// `get` as UTF-8.
    pub fn get_str(&self, tag: Tag) -> Option<&str> {
        self.get(tag).and_then(|value| std::str::from_utf8(value).ok())
    }

    /// `get` as an unsigned integer.
    pub fn get_u64(&self, tag: Tag) -> Option<u64> {
        self.get(tag).and_then(parse_u64)
    }

    /// Whether `tag` is `Y` (PossDupFlag, PossResend, GapFillFlag, ResetSeqNumFlag…).
    pub fn flag(&self, tag: Tag) -> bool {
        self.get(tag) == Some(b"Y")
    }

    pub fn seq_num(&self) -> Option<u64> {
        self.get_u64(tags::MSG_SEQ_NUM)
    }

    /// Every field, in received order.
    pub fn fields(&self) -> impl Iterator<Item = FieldRef<'_>> {
        self.fields.iter().map(|field| self.field_ref(field))
    }

    /// The header fields after 8, 9 and 35 (valid after dictionary validation).
    pub fn header_fields(&self) -> impl Iterator<Item = FieldRef<'_>> {
        self.fields.get(3..self.body_start).unwrap_or(&[]).iter().map(|field| self.field_ref(field))
    }

    /// The body fields, group members included (their `depth` is above 0).
    pub fn body_fields(&self) -> impl Iterator<Item = FieldRef<'_>> {
        self.fields.get(self.body_start..self.trailer_start).unwrap_or(&[]).iter().map(|field| self.field_ref(field))
    }

    /// The bytes and the fields, the latter writable (validation marks group depths).
    pub(crate) fn split_for_validation(&mut self) -> (&[u8], &mut [Field]) {
        (&self.raw, &mut self.fields)
    }

    pub(crate) fn field_tags(&self) -> impl Iterator<Item = Tag> + '_ {
        self.fields.iter().map(|field| field.tag)
    }

    pub(crate) fn set_sections(&mut self, body_start: usize, trailer_start: usize) {
        self.body_start = body_start;
        self.trailer_start = trailer_start;
    }

    /// The bytes from the first body field to the CheckSum field (exclusive), as sent.
    pub(crate) fn raw_body(&self) -> &[u8] {
        let Some(trailer) = self.fields.get(self.trailer_start) else { return &[] };
        // A field's bytes start with its tag: back up from the value over "tag=".
        let field_begin = |field: &Field| {
            let before = &self.raw[..field.start as usize - 1];
            before.iter().rposition(|&byte| byte == SOH).map_or(0, |at| at + 1)
        };
        let end = field_begin(trailer);
        let start = self.fields.get(self.body_start).map_or(end, field_begin).min(end);
        &self.raw[start..end]
    }
}

impl fmt::Display for Message {
    /// The message with `|` for SOH, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in &self.raw {
            let shown = if byte == SOH {
                '|'
            } else if byte.is_ascii_graphic() || byte == b' ' {
                byte as char
            } else {
                '?'
            };
            write!(f, "{shown}")?;
        }
        Ok(())
    }
}

/// Header fields the encoder writes itself (an `OutMessage` cannot set them).
const MANAGED_HEADER_TAGS: [Tag; 9] = [
    tags::BEGIN_STRING,
    tags::BODY_LENGTH,
    tags::MSG_TYPE,
    tags::MSG_SEQ_NUM,
    tags::POSS_DUP_FLAG,
    tags::SENDER_COMP_ID,
    tags::SENDING_TIME,
    tags::TARGET_COMP_ID,
    tags::ORIG_SENDING_TIME,
];

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Sort key: the tag, or for a group member the count tag of its top-level group.
    key: Tag,
    tag: Tag,
    start: u32,
    end: u32,
}

/// An outbound message: its type, extra header fields and body fields. The encoder adds
/// 8, 9, 34, 43, 49, 52, 56, 122 and 10, and writes header then body fields in ascending
/// tag order (group members stay after their count field, in the order given).
#[derive(Clone, Debug, Default)]
pub struct OutMessage {
    msg_type: SmallVec<[u8; 4]>,
    header: Vec<Entry>,
    body: Vec<Entry>,
    values: Vec<u8>,
    raw_body: Option<Range<usize>>,
}

impl OutMessage {
    pub fn new(msg_type: &str) -> Self {
        let mut message = OutMessage::default();
        message.reset(msg_type.as_bytes());
        message
    }

    /// Empties the message (keeping its allocations) for a new one of `msg_type`.
    pub fn reset(&mut self, msg_type: &[u8]) {
        self.msg_type.clear();
        self.msg_type.extend_from_slice(msg_type);
        self.header.clear();
        self.body.clear();
        self.values.clear();
        self.raw_body = None;
    }

    pub fn msg_type(&self) -> &[u8] {
        &self.msg_type
    }

    fn entry(&mut self, key: Tag, tag: Tag, value: &[u8]) -> Entry {
        let start = self.values.len() as u32;
        self.values.extend_from_slice(value);
        Entry { key, tag, start, end: self.values.len() as u32 }
    }

    /// Adds `entry` to `entries`, replacing a top-level field of the same tag.
    fn put(entries: &mut Vec<Entry>, entry: Entry) {
        match entries.iter_mut().find(|existing| existing.tag == entry.tag && existing.key == entry.tag) {
            Some(existing) => *existing = entry,
            None => entries.push(entry),
        }
    }

    /// Sets a body field (again: the new value replaces the old). The value must not
    /// contain SOH unless the field is DATA and its length field comes right before it.
    pub fn set(&mut self, tag: Tag, value: impl AsRef<[u8]>) -> &mut Self {
        let entry = self.entry(tag, tag, value.as_ref());
        Self::put(&mut self.body, entry);
        self
    }

    /// Sets a body field to a formatted value (`format_args!`), without allocating.
    pub fn set_fmt(&mut self, tag: Tag, value: fmt::Arguments<'_>) -> &mut Self {
        let start = self.values.len() as u32;
        // Writing to a Vec cannot fail.
        let _ = self.values.write_fmt(value);
        Self::put(&mut self.body, Entry { key: tag, tag, start, end: self.values.len() as u32 });
        self
    }

    pub fn set_u64(&mut self, tag: Tag, value: u64) -> &mut Self {
        let mut digits = [0; 20];
        let value = format_u64(value, &mut digits);
        self.set(tag, value)
    }

    /// Sets a field of a repeating group, written after `count_tag` (which must be set
    /// with `set`) in the order of the calls.
    pub fn set_group_member(&mut self, count_tag: Tag, tag: Tag, value: impl AsRef<[u8]>) -> &mut Self {
        let entry = self.entry(count_tag, tag, value.as_ref());
        self.body.push(entry);
        self
    }

    /// Sets a header field other than those the encoder writes (which are ignored).
    pub fn set_header(&mut self, tag: Tag, value: impl AsRef<[u8]>) -> &mut Self {
        if !MANAGED_HEADER_TAGS.contains(&tag) && tag != tags::CHECK_SUM {
            let entry = self.entry(tag, tag, value.as_ref());
            Self::put(&mut self.header, entry);
        }
        self
    }

    /// Uses `raw` (whole fields, each ending with SOH) as the body, verbatim.
    pub(crate) fn set_raw_body(&mut self, raw: &[u8]) {
        let start = self.values.len();
        self.values.extend_from_slice(raw);
        self.raw_body = Some(start..self.values.len());
    }

    /// The value of a body or header field set on this message.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.body
            .iter()
            .chain(&self.header)
            .find(|entry| entry.tag == tag)
            .map(|entry| &self.values[entry.start as usize..entry.end as usize])
    }
}

fn format_u64(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &digits[at..];
        }
    }
}

fn push_tag(out: &mut Vec<u8>, tag: Tag) {
    if tag < 0 {
        out.push(b'-');
    }
    let mut digits = [0; 20];
    out.extend_from_slice(format_u64(u64::from(tag.unsigned_abs()), &mut digits));
}

fn push_field(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    push_tag(out, tag);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(SOH);
}

/// The session-managed part of a message's header.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub begin_string: &'a [u8],
    pub sender_comp_id: &'a [u8],
    pub target_comp_id: &'a [u8],
    pub seq: u64,
    /// SendingTime (52), `YYYYMMDD-HH:MM:SS.sss`.
    pub sending_time: &'a [u8],
    /// For a resend: PossDupFlag (43) = Y and this OrigSendingTime (122).
    pub orig_sending_time: Option<&'a [u8]>,
}

/// Writes messages; keeps one scratch buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    scratch: Vec<u8>,
}

impl Encoder {
    /// Appends `message`, framed, to `out`; returns where it lies in `out`.
    pub fn encode(&mut self, envelope: &Envelope<'_>, message: &mut OutMessage, out: &mut Vec<u8>) -> Range<usize> {
        message.header.sort_by_key(|entry| entry.key);
        message.body.sort_by_key(|entry| entry.key);
        let mut seq_digits = [0; 20];
        let seq = format_u64(envelope.seq, &mut seq_digits);
        let mut header: SmallVec<[(Tag, &[u8]); 16]> = SmallVec::new();
        header.push((tags::MSG_SEQ_NUM, seq));
        header.push((tags::SENDER_COMP_ID, envelope.sender_comp_id));
        header.push((tags::SENDING_TIME, envelope.sending_time));
        header.push((tags::TARGET_COMP_ID, envelope.target_comp_id));
        if let Some(orig) = envelope.orig_sending_time {
            header.push((tags::POSS_DUP_FLAG, b"Y"));
            header.push((tags::ORIG_SENDING_TIME, orig));
        }
        for entry in &message.header {
            header.push((entry.tag, &message.values[entry.start as usize..entry.end as usize]));
        }
        header.sort_by_key(|(tag, _)| *tag);

        let scratch = &mut self.scratch;
        scratch.clear();
        push_field(scratch, tags::MSG_TYPE, &message.msg_type);
        for (tag, value) in &header {
            push_field(scratch, *tag, value);
        }
        match &message.raw_body {
            Some(range) => scratch.extend_from_slice(&message.values[range.clone()]),
            None => {
                for entry in &message.body {
                    push_field(scratch, entry.tag, &message.values[entry.start as usize..entry.end as usize]);
                }
            }
        }

        let start = out.len();
        push_field(out, tags::BEGIN_STRING, envelope.begin_string);
        let mut length_digits = [0; 20];
        push_field(out, tags::BODY_LENGTH, format_u64(scratch.len() as u64, &mut length_digits));
        out.extend_from_slice(scratch);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(b"10=");
        out.extend_from_slice(&[b'0' + sum / 100, b'0' + sum / 10 % 10, b'0' + sum % 10, SOH]);
        start..out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_split_anywhere_is_found_once() {
        let mut encoder = Encoder::default();
        let mut bytes = Vec::new();
        let envelope = Envelope {
            begin_string: b"FIX.4.4",
            sender_comp_id: b"A",
            target_comp_id: b"B",
            seq: 7,
            sending_time: b"20240101-00:00:00.000",
            orig_sending_time: None,
        };
        encoder.encode(&envelope, OutMessage::new("0").set(112, "x"), &mut bytes);
        for split in 0..bytes.len() {
            let mut framer = Framer::new();
            framer.extend(&bytes[..split]);
            assert!(framer.next_frame().is_none(), "split {split}");
            framer.extend(&bytes[split..]);
            assert_eq!(framer.next_frame(), Some(Ok(&bytes[..])));
            assert!(framer.next_frame().is_none());
        }
    }

    #[test]
    fn tags_parse_signed() {
        assert_eq!(parse_tag(b"-1"), Some(-1));
        assert_eq!(parse_tag(b"5000"), Some(5000));
        assert_eq!(parse_tag(b"4garbled9"), None);
        assert_eq!(parse_tag(b"+1"), None);
        assert_eq!(parse_tag(b""), None);
    }
}
