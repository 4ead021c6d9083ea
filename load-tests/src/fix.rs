//! FIX 4.4 on the client side, by hand: messages built with their header, `BodyLength`
//! and `CheckSum`, and messages read back (framing by `BodyLength`, the checksum checked,
//! fields found by tag). No code of the server's is used, so the server's codec is
//! tested by an independent one.

use std::fmt::Write as _;

use anyhow::bail;

use crate::limits::MESSAGE_BYTES_MAX;

pub(crate) const SOH: u8 = 0x01;

/// Tags the load tool writes or reads.
pub(crate) mod tag {
    pub(crate) const ACCOUNT: u32 = 1;
    pub(crate) const CL_ORD_ID: u32 = 11;
    pub(crate) const EXEC_ID: u32 = 17;
    pub(crate) const HANDL_INST: u32 = 21;
    pub(crate) const LAST_PX: u32 = 31;
    pub(crate) const LAST_QTY: u32 = 32;
    pub(crate) const MSG_SEQ_NUM: u32 = 34;
    pub(crate) const MSG_TYPE: u32 = 35;
    pub(crate) const BEGIN_SEQ_NO: u32 = 7;
    pub(crate) const NEW_SEQ_NO: u32 = 36;
    pub(crate) const ORDER_ID: u32 = 37;
    pub(crate) const ORDER_QTY: u32 = 38;
    pub(crate) const ORD_TYPE: u32 = 40;
    pub(crate) const ORIG_CL_ORD_ID: u32 = 41;
    pub(crate) const PRICE: u32 = 44;
    pub(crate) const SIDE: u32 = 54;
    pub(crate) const SYMBOL: u32 = 55;
    pub(crate) const TEXT: u32 = 58;
    pub(crate) const TIME_IN_FORCE: u32 = 59;
    pub(crate) const TRANSACT_TIME: u32 = 60;
    pub(crate) const ENCRYPT_METHOD: u32 = 98;
    pub(crate) const CXL_REJ_REASON: u32 = 102;
    pub(crate) const HEART_BT_INT: u32 = 108;
    pub(crate) const TEST_REQ_ID: u32 = 112;
    pub(crate) const EXEC_TYPE: u32 = 150;
    pub(crate) const LEAVES_QTY: u32 = 151;
    pub(crate) const USERNAME: u32 = 553;
    pub(crate) const PASSWORD: u32 = 554;
}

/// The UTC time as FIX writes it, `YYYYMMDD-HH:MM:SS.sss`: the server's own formatter.
pub(crate) fn utc_timestamp(unix_ms: u64) -> String {
    let stamp = bourse_gateway::fix::time::timestamp_ms(i64::try_from(unix_ms).unwrap_or(i64::MAX));
    String::from_utf8_lossy(&stamp).into_owned()
}

/// Builds the messages of one session (as the initiator): its `CompIDs`, its outbound
/// sequence number, and a cached `SendingTime` (rebuilt once per millisecond).
#[derive(Debug)]
pub(crate) struct FixWriter {
    sender_comp_id: String,
    target_comp_id: String,
    next_seq: u64,
    body: String,
    time_ms: u64,
    time_text: String,
}

impl FixWriter {
    pub(crate) fn new(sender_comp_id: &str, target_comp_id: &str) -> FixWriter {
        FixWriter {
            sender_comp_id: sender_comp_id.to_owned(),
            target_comp_id: target_comp_id.to_owned(),
            next_seq: 1,
            body: String::with_capacity(512),
            time_ms: 0,
            time_text: String::new(),
        }
    }

    /// Starts a message of `msg_type`: the header fields after `BodyLength`. Add fields
    /// with [`FixWriter::field`], then [`FixWriter::finish`] into the output.
    pub(crate) fn start(&mut self, msg_type: &str) -> &mut FixWriter {
        let now = bourse_gateway::auth::unix_ms_now();
        if now != self.time_ms {
            self.time_ms = now;
            self.time_text = utc_timestamp(now);
        }
        self.body.clear();
        let _ = write!(
            self.body,
            "35={msg_type}\u{1}49={}\u{1}56={}\u{1}34={}\u{1}52={}\u{1}",
            self.sender_comp_id, self.target_comp_id, self.next_seq, self.time_text
        );
        self.next_seq += 1;
        self
    }

    pub(crate) fn field(&mut self, tag: u32, value: impl std::fmt::Display) -> &mut FixWriter {
        let _ = write!(self.body, "{tag}={value}\u{1}");
        self
    }

    /// The `SendingTime` of the message being built (for `TransactTime`).
    pub(crate) fn now_text(&self) -> &str {
        &self.time_text
    }

    /// Appends the whole message (header, body, trailer) to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        let _ = write!(VecWriter(out), "8=FIX.4.4\u{1}9={}\u{1}", self.body.len());
        out.extend_from_slice(self.body.as_bytes());
        let checksum = out[start..].iter().map(|byte| u32::from(*byte)).sum::<u32>() % 256;
        let _ = write!(VecWriter(out), "10={checksum:03}\u{1}");
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// The length of the whole message at the start of `buffer`, its checksum verified;
/// `Ok(None)` when it is not all there yet.
pub(crate) fn frame_len(buffer: &[u8]) -> anyhow::Result<Option<usize>> {
    const BEGIN: &[u8] = b"8=FIX.4.4\x019=";
    if buffer.len() < BEGIN.len() {
        return Ok(None);
    }
    if !buffer.starts_with(BEGIN) {
        bail!(
            "a FIX message that does not start with 8=FIX.4.4|9=: {:?}",
            String::from_utf8_lossy(&buffer[..32.min(buffer.len())])
        );
    }
    let Some(digits_len) = buffer[BEGIN.len()..].iter().position(|byte| *byte == SOH) else {
        return Ok(None);
    };
    let digits = &buffer[BEGIN.len()..BEGIN.len() + digits_len];
    let body_len: usize = std::str::from_utf8(digits).ok().and_then(|text| text.parse().ok()).unwrap_or(usize::MAX);
    if body_len > MESSAGE_BYTES_MAX {
        bail!("a FIX BodyLength of {body_len} bytes");
    }
    let body_start = BEGIN.len() + digits_len + 1;
    let total = body_start + body_len + 7;
    if buffer.len() < total {
        return Ok(None);
    }
    let trailer = &buffer[body_start + body_len..total];
    if !trailer.starts_with(b"10=") || trailer[6] != SOH {
        bail!("a FIX message whose BodyLength does not end at its CheckSum");
    }
    let expected = buffer[..body_start + body_len].iter().map(|byte| u32::from(*byte)).sum::<u32>() % 256;
    let declared = std::str::from_utf8(&trailer[3..6]).ok().and_then(|text| text.parse::<u32>().ok());
    if declared != Some(expected) {
        bail!("a FIX message with a bad CheckSum");
    }
    Ok(Some(total))
}

/// A message read back: its fields in order, borrowed from the buffer.
#[derive(Debug, Default)]
pub(crate) struct FixMessage<'a> {
    fields: Vec<(u32, &'a str)>,
}

impl<'a> FixMessage<'a> {
    /// Parses one whole message (as `frame_len` delimited it).
    pub(crate) fn parse(bytes: &'a [u8]) -> anyhow::Result<FixMessage<'a>> {
        let text = std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("a FIX message that is not UTF-8"))?;
        let mut fields = Vec::with_capacity(32);
        for field in text.split('\u{1}').filter(|field| !field.is_empty()) {
            let Some((tag, value)) = field.split_once('=') else { bail!("a FIX field without '=': {field:?}") };
            let Ok(tag) = tag.parse::<u32>() else { bail!("a FIX tag that is not a number: {tag:?}") };
            fields.push((tag, value));
        }
        Ok(FixMessage { fields })
    }

    pub(crate) fn get(&self, tag: u32) -> Option<&'a str> {
        self.fields.iter().find(|(found, _)| *found == tag).map(|(_, value)| *value)
    }

    pub(crate) fn msg_type(&self) -> &'a str {
        self.get(tag::MSG_TYPE).unwrap_or("")
    }

    pub(crate) fn seq(&self) -> Option<u64> {
        self.get(tag::MSG_SEQ_NUM).and_then(|text| text.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_built_here_frame_and_parse_back() {
        let mut writer = FixWriter::new("LOAD0", "BOURSE");
        let mut out = Vec::new();
        writer.start("D").field(tag::CL_ORD_ID, "1.2a").field(tag::SYMBOL, "BTC-USD").finish(&mut out);
        writer.start("0").finish(&mut out);
        let first = frame_len(&out).unwrap().unwrap();
        let message = FixMessage::parse(&out[..first]).unwrap();
        assert_eq!((message.msg_type(), message.get(tag::CL_ORD_ID), message.seq()), ("D", Some("1.2a"), Some(1)));
        assert_eq!(message.get(49), Some("LOAD0"));
        let second = frame_len(&out[first..]).unwrap().unwrap();
        assert_eq!(FixMessage::parse(&out[first..first + second]).unwrap().seq(), Some(2));
        assert_eq!(frame_len(&out[..first - 1]).unwrap(), None, "incomplete");
        let mut bad = out[..first].to_vec();
        let at = bad.len() - 2;
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        assert!(frame_len(&bad).is_err(), "a wrong checksum is refused");
    }

    #[test]
    fn utc_timestamps_follow_the_calendar() {
        assert_eq!(utc_timestamp(0), "19700101-00:00:00.000");
        assert_eq!(utc_timestamp(951_782_400_123), "20000229-00:00:00.123");
        assert_eq!(utc_timestamp(1_795_681_815_500), "20261126-08:30:15.500");
    }
}
