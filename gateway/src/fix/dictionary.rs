//! The FIX 4.4 data dictionary and message validation.
//!
//! `gateway/fix/FIX44.xml` (QuickFIX's dictionary, used as data; licence beside it) is
//! embedded with `include_str!` and read once with `roxmltree`: fields with their types
//! and enumerated values, the header and trailer, every message with its fields,
//! components flattened in place and repeating groups (count field, delimiter = first
//! member, members). `validate` then checks a parsed message and answers with the
//! standard SessionRejectReason (373) and the tag to name in RefTagID (371):
//!
//! 1. structure: header fields before body fields before trailer fields (14);
//! 2. MsgType known (11);
//! 3. required fields present: header, body, then inside each group instance (1);
//! 4. each field in received order: repeated (13), empty (4), data format (6), value out
//!    of its enumeration (5), unknown tag (0), not in this message type (2), and after a
//!    group its NumInGroup count (16). The first failure is reported.
//!
//! A field is required at the top level when it is required in the message and, if it
//! comes from a component, the component is required too. Validation allocates nothing.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use roxmltree::{Document, Node};
use thiserror::Error;

use super::codec::{Field, Message, parse_u64};
use super::tags::{SessionRejectReason, Tag};
use super::time;

const FIX44_XML: &str = include_str!("../../fix/FIX44.xml");

/// Tags are tracked in fixed bit sets: the dictionary may not define a tag at or above this.
const TAG_LIMIT: Tag = 1024;
/// How deep components may nest.
const NESTING_MAX: usize = 16;

static FIX44: LazyLock<Result<Dictionary, DictionaryError>> = LazyLock::new(|| Dictionary::load(FIX44_XML));

/// Why a dictionary could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DictionaryError {
    #[error("dictionary XML: {0}")]
    Xml(String),
    #[error("dictionary has no <{0}> section")]
    MissingSection(&'static str),
    #[error("dictionary element <{element}> lacks attribute {attribute}")]
    MissingAttribute { element: String, attribute: &'static str },
    #[error("dictionary field number {0:?} is not a tag below {TAG_LIMIT}")]
    BadTag(String),
    #[error("dictionary refers to undefined field {0}")]
    UnknownField(String),
    #[error("dictionary refers to undefined component {0}")]
    UnknownComponent(String),
    #[error("dictionary components nest deeper than {NESTING_MAX}")]
    Nesting,
    #[error("dictionary element <{0}> not understood")]
    Unexpected(String),
}

/// A validation failure: the reason and the tag it concerns, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: SessionRejectReason,
    pub tag: Option<Tag>,
}

impl Violation {
    fn at(reason: SessionRejectReason, tag: Tag) -> Self {
        Violation { reason, tag: Some(tag) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Int,
    UnsignedInt,
    Float,
    Char,
    Boolean,
    UtcTimestamp,
    UtcTimeOnly,
    UtcDateOnly,
    MultipleValue,
    Data,
    Text,
}

impl Format {
    fn of(type_name: &str) -> Self {
        match type_name {
            "INT" | "DAYOFMONTH" => Format::Int,
            "LENGTH" | "NUMINGROUP" | "SEQNUM" | "TAGNUM" => Format::UnsignedInt,
            "FLOAT" | "QTY" | "PRICE" | "PRICEOFFSET" | "AMT" | "PERCENTAGE" => Format::Float,
            "CHAR" => Format::Char,
            "BOOLEAN" => Format::Boolean,
            "UTCTIMESTAMP" => Format::UtcTimestamp,
            "UTCTIMEONLY" => Format::UtcTimeOnly,
            "UTCDATEONLY" | "UTCDATE" => Format::UtcDateOnly,
            "MULTIPLEVALUESTRING" | "MULTIPLESTRINGVALUE" => Format::MultipleValue,
            "DATA" | "XMLDATA" => Format::Data,
            _ => Format::Text,
        }
    }

    fn accepts(self, value: &[u8]) -> bool {
        match self {
            Format::Int => is_int(value),
            Format::UnsignedInt => parse_u64(value).is_some(),
            Format::Float => is_float(value),
            Format::Char => value.len() == 1,
            Format::Boolean => value == b"Y" || value == b"N",
            Format::UtcTimestamp => time::parse_timestamp(value).is_some(),
            Format::UtcTimeOnly => time::is_time_only(value),
            Format::UtcDateOnly => time::is_date_only(value),
            Format::MultipleValue | Format::Data | Format::Text => true,
        }
    }
}

fn is_int(value: &[u8]) -> bool {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    parse_u64(digits).is_some()
}

/// `-?digits[.digits]`, at least one digit: no sign `+`, no exponent.
fn is_float(value: &[u8]) -> bool {
    let unsigned = value.strip_prefix(b"-").unwrap_or(value);
    let mut digits = 0;
    let mut points = 0;
    for &byte in unsigned {
        match byte {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return false,
        }
    }
    digits > 0 && points <= 1
}

#[derive(Debug)]
struct FieldDef {
    name: Box<str>,
    format: Format,
    /// Enumerated values, sorted; empty when any value of the format is allowed.
    values: Vec<Box<[u8]>>,
}

impl FieldDef {
    fn check(&self, value: &[u8]) -> Option<SessionRejectReason> {
        if !self.format.accepts(value) {
            return Some(SessionRejectReason::IncorrectDataFormat);
        }
        if self.values.is_empty() {
            return None;
        }
        let known = |candidate: &[u8]| self.values.binary_search_by(|allowed| (**allowed).cmp(candidate)).is_ok();
        let valid = if self.format == Format::MultipleValue {
            value.split(|&byte| byte == b' ').all(known)
        } else {
            known(value)
        };
        (!valid).then_some(SessionRejectReason::ValueIsIncorrect)
    }
}

#[derive(Debug)]
struct Member {
    tag: Tag,
    required: bool,
    group: Option<Box<Group>>,
}

#[derive(Debug)]
struct Group {
    count_tag: Tag,
    scope: Scope,
}

/// The fields allowed at one level: a message body, the header, the trailer, or one
/// instance of a repeating group.
#[derive(Debug, Default)]
struct Scope {
    /// Sorted by tag.
    members: Vec<Member>,
    /// Required tags, ascending.
    required: Vec<Tag>,
    /// The first member in definition order (for a group: what starts an instance).
    delimiter: Tag,
}

impl Scope {
    fn from_members(members: Vec<Member>) -> Self {
        let delimiter = members.first().map_or(0, |member| member.tag);
        let mut required: Vec<Tag> = members.iter().filter(|member| member.required).map(|member| member.tag).collect();
        required.sort_unstable();
        let mut members = members;
        members.sort_by_key(|member| member.tag);
        Scope { members, required, delimiter }
    }

    fn member(&self, tag: Tag) -> Option<&Member> {
        self.members.binary_search_by_key(&tag, |member| member.tag).ok().map(|index| &self.members[index])
    }

    fn collect_tags(&self, into: &mut TagSet) {
        for member in &self.members {
            into.insert(member.tag);
            if let Some(group) = &member.group {
                group.scope.collect_tags(into);
            }
        }
    }
}

#[derive(Debug)]
struct MessageDef {
    msg_type: Box<[u8]>,
    name: Box<str>,
    admin: bool,
    body: Scope,
}

/// A set of tags below `TAG_LIMIT`; tags outside are never members.
#[derive(Clone, Copy, Debug, Default)]
struct TagSet([u64; (TAG_LIMIT / 64) as usize]);

impl TagSet {
    fn slot(tag: Tag) -> Option<(usize, u64)> {
        (0..TAG_LIMIT).contains(&tag).then(|| ((tag / 64) as usize, 1u64 << (tag % 64)))
    }

    /// Adds `tag`; false if it was there already (tags outside the range always add).
    fn insert(&mut self, tag: Tag) -> bool {
        let Some((word, bit)) = Self::slot(tag) else { return true };
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    fn contains(&self, tag: Tag) -> bool {
        Self::slot(tag).is_some_and(|(word, bit)| self.0[word] & bit != 0)
    }
}

/// A loaded data dictionary.
pub struct Dictionary {
    /// Indexed by tag.
    fields: Vec<Option<FieldDef>>,
    header: Scope,
    trailer: Scope,
    /// Sorted by MsgType.
    messages: Vec<MessageDef>,
    header_tags: TagSet,
    trailer_tags: TagSet,
    data_fields: Vec<(Tag, Tag)>,
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("fields", &self.fields.iter().flatten().count())
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

fn attribute<'a>(node: Node<'a, '_>, name: &'static str) -> Result<&'a str, DictionaryError> {
    node.attribute(name).ok_or_else(|| DictionaryError::MissingAttribute {
        element: node.tag_name().name().to_string(),
        attribute: name,
    })
}

fn elements<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |child| child.has_tag_name(name))
}

/// Resolves names while the XML is at hand.
struct Loader<'a, 'input> {
    tags_by_name: HashMap<&'a str, Tag>,
    components: HashMap<&'a str, Node<'a, 'input>>,
}

impl<'a, 'input> Loader<'a, 'input> {
    fn tag(&self, node: Node<'a, 'input>) -> Result<Tag, DictionaryError> {
        let name = attribute(node, "name")?;
        self.tags_by_name.get(name).copied().ok_or_else(|| DictionaryError::UnknownField(name.to_string()))
    }

    /// Appends the members under `node` to `out`, flattening components; `required`
    /// says whether the enclosing component is itself required.
    fn fill(
        &self,
        node: Node<'a, 'input>,
        required: bool,
        nesting: usize,
        out: &mut Vec<Member>,
    ) -> Result<(), DictionaryError> {
        if nesting > NESTING_MAX {
            return Err(DictionaryError::Nesting);
        }
        for child in node.children().filter(Node::is_element) {
            let child_required = required && child.attribute("required") == Some("Y");
            let member = match child.tag_name().name() {
                "field" => Member { tag: self.tag(child)?, required: child_required, group: None },
                "group" => {
                    let count_tag = self.tag(child)?;
                    let mut inner = Vec::new();
                    self.fill(child, true, nesting + 1, &mut inner)?;
                    let scope = Scope::from_members(inner);
                    Member {
                        tag: count_tag,
                        required: child_required,
                        group: Some(Box::new(Group { count_tag, scope })),
                    }
                }
                "component" => {
                    let name = attribute(child, "name")?;
                    let component = self
                        .components
                        .get(name)
                        .copied()
                        .ok_or_else(|| DictionaryError::UnknownComponent(name.to_string()))?;
                    self.fill(component, child_required, nesting + 1, out)?;
                    continue;
                }
                other => return Err(DictionaryError::Unexpected(other.to_string())),
            };
            if !out.iter().any(|existing| existing.tag == member.tag) {
                out.push(member);
            }
        }
        Ok(())
    }

    fn scope(&self, node: Node<'a, 'input>) -> Result<Scope, DictionaryError> {
        let mut members = Vec::new();
        self.fill(node, true, 0, &mut members)?;
        Ok(Scope::from_members(members))
    }
}

/// Field definitions indexed by tag, and tags by field name.
type Fields<'a> = (Vec<Option<FieldDef>>, HashMap<&'a str, Tag>);

fn load_fields<'a>(section: Node<'a, '_>) -> Result<Fields<'a>, DictionaryError> {
    let mut fields: Vec<Option<FieldDef>> = (0..TAG_LIMIT).map(|_| None).collect();
    let mut tags_by_name = HashMap::new();
    for node in elements(section, "field") {
        let number = attribute(node, "number")?;
        let tag: Tag = number
            .parse()
            .ok()
            .filter(|tag| (1..TAG_LIMIT).contains(tag))
            .ok_or_else(|| DictionaryError::BadTag(number.to_string()))?;
        let name = attribute(node, "name")?;
        let mut values = Vec::new();
        for value in elements(node, "value") {
            values.push(attribute(value, "enum")?.as_bytes().into());
        }
        values.sort();
        values.dedup();
        let format = Format::of(attribute(node, "type")?);
        tags_by_name.insert(name, tag);
        fields[tag as usize] = Some(FieldDef { name: name.into(), format, values });
    }
    Ok((fields, tags_by_name))
}

impl Dictionary {
    /// The FIX 4.4 dictionary, loaded on first use.
    pub fn fix44() -> Result<&'static Dictionary, DictionaryError> {
        FIX44.as_ref().map_err(Clone::clone)
    }

    /// Loads a QuickFIX-format dictionary.
    pub fn load(xml: &str) -> Result<Dictionary, DictionaryError> {
        let document = Document::parse(xml).map_err(|error| DictionaryError::Xml(error.to_string()))?;
        let root = document.root_element();
        let section = |name: &'static str| elements(root, name).next().ok_or(DictionaryError::MissingSection(name));
        let (fields, tags_by_name) = load_fields(section("fields")?)?;
        let mut components = HashMap::new();
        for node in elements(section("components")?, "component") {
            components.insert(attribute(node, "name")?, node);
        }
        let loader = Loader { tags_by_name, components };
        let header = loader.scope(section("header")?)?;
        let trailer = loader.scope(section("trailer")?)?;
        let mut messages = Vec::new();
        for node in elements(section("messages")?, "message") {
            messages.push(MessageDef {
                msg_type: attribute(node, "msgtype")?.as_bytes().into(),
                name: attribute(node, "name")?.into(),
                admin: node.attribute("msgcat") == Some("admin"),
                body: loader.scope(node)?,
            });
        }
        messages.sort_by(|left, right| left.msg_type.cmp(&right.msg_type));
        let mut header_tags = TagSet::default();
        header.collect_tags(&mut header_tags);
        let mut trailer_tags = TagSet::default();
        trailer.collect_tags(&mut trailer_tags);
        let data_fields = Self::pair_data_fields(&fields, &loader.tags_by_name);
        Ok(Dictionary { fields, header, trailer, messages, header_tags, trailer_tags, data_fields })
    }

    /// (DATA tag, its LENGTH tag), paired by name: `X` with `XLen` or `XLength`.
    fn pair_data_fields(fields: &[Option<FieldDef>], tags_by_name: &HashMap<&str, Tag>) -> Vec<(Tag, Tag)> {
        let mut pairs = Vec::new();
        for (tag, definition) in (0..).zip(fields) {
            let Some(definition) = definition else { continue };
            if definition.format != Format::Data {
                continue;
            }
            let length = ["Len", "Length"].iter().find_map(|suffix| {
                let length_tag = *tags_by_name.get(format!("{}{suffix}", definition.name).as_str())?;
                let length_def = fields[length_tag as usize].as_ref()?;
                (length_def.format == Format::UnsignedInt).then_some(length_tag)
            });
            if let Some(length_tag) = length {
                pairs.push((tag, length_tag));
            }
        }
        pairs
    }

    /// (DATA tag, LENGTH tag) pairs, for `Message::parse_from`.
    pub fn data_fields(&self) -> &[(Tag, Tag)] {
        &self.data_fields
    }

    fn message(&self, msg_type: &[u8]) -> Option<&MessageDef> {
        self.messages
            .binary_search_by(|definition| (*definition.msg_type).cmp(msg_type))
            .ok()
            .map(|index| &self.messages[index])
    }

    /// Whether `msg_type` is defined.
    pub fn knows_message(&self, msg_type: &[u8]) -> bool {
        self.message(msg_type).is_some()
    }

    /// The name of a message type (e.g. `NewOrderSingle`).
    pub fn message_name(&self, msg_type: &[u8]) -> Option<&str> {
        self.message(msg_type).map(|definition| &*definition.name)
    }

    /// Whether `msg_type` is a session-level (admin) message.
    pub fn is_admin(&self, msg_type: &[u8]) -> bool {
        self.message(msg_type).is_some_and(|definition| definition.admin)
    }

    fn field(&self, tag: Tag) -> Option<&FieldDef> {
        usize::try_from(tag).ok().and_then(|index| self.fields.get(index)).and_then(Option::as_ref)
    }

    /// The name of a field (e.g. `ClOrdID`).
    pub fn field_name(&self, tag: Tag) -> Option<&str> {
        self.field(tag).map(|definition| &*definition.name)
    }

    /// Whether `tag` belongs to the standard header.
    pub fn is_header_tag(&self, tag: Tag) -> bool {
        self.header_tags.contains(tag)
    }

    /// Splits the fields into header, body and trailer: (body start, trailer start, the
    /// first field found out of its section).
    fn sections(&self, tags: impl Iterator<Item = Tag>) -> (usize, usize, Option<Tag>) {
        let mut body_start = None;
        let mut trailer_start = None;
        let mut misplaced = None;
        for (index, tag) in tags.enumerate() {
            let in_header = self.header_tags.contains(tag);
            let in_trailer = self.trailer_tags.contains(tag);
            match (body_start, trailer_start) {
                (None, _) if in_header => {}
                (None, _) if in_trailer => {
                    body_start = Some(index);
                    trailer_start = Some(index);
                }
                (None, _) => body_start = Some(index),
                (Some(_), None) if in_trailer => trailer_start = Some(index),
                (Some(_), None) if in_header => misplaced = misplaced.or(Some(tag)),
                (Some(_), Some(_)) if !in_trailer => misplaced = misplaced.or(Some(tag)),
                _ => {}
            }
        }
        let body_start = body_start.unwrap_or(0);
        (body_start, trailer_start.unwrap_or(body_start), misplaced)
    }

    /// Marks the header/body/trailer boundaries of `message` without validating it.
    pub(crate) fn mark_sections(&self, message: &mut Message) {
        let (body_start, trailer_start, _) = self.sections(message.field_tags());
        message.set_sections(body_start, trailer_start);
    }

    /// Validates `message` (fresh from `Message::parse_from`), marking the depth of
    /// group members and the header/body/trailer boundaries as it goes.
    pub fn validate(&self, message: &mut Message) -> Result<(), Violation> {
        let (body_start, trailer_start, misplaced) = self.sections(message.field_tags());
        message.set_sections(body_start, trailer_start);
        if let Some(tag) = misplaced {
            return Err(Violation::at(SessionRejectReason::TagSpecifiedOutOfRequiredOrder, tag));
        }
        let Some(definition) = self.message(message.msg_type()) else {
            return Err(Violation { reason: SessionRejectReason::InvalidMsgType, tag: None });
        };
        let (raw, fields) = message.split_for_validation();
        let field_count = fields.len();
        let mut walk = Walk { dictionary: self, raw, fields, error: None, group_required: None };
        let mut header_seen = TagSet::default();
        walk.section(0..body_start, &self.header, &mut header_seen);
        let mut body_seen = TagSet::default();
        walk.section(body_start..trailer_start, &definition.body, &mut body_seen);
        walk.section(trailer_start..field_count, &self.trailer, &mut TagSet::default());
        let missing = |scope: &Scope, seen: &TagSet| scope.required.iter().copied().find(|&tag| !seen.contains(tag));
        if let Some(tag) = missing(&self.header, &header_seen).or_else(|| missing(&definition.body, &body_seen)) {
            return Err(Violation::at(SessionRejectReason::RequiredTagMissing, tag));
        }
        if let Some(violation) = walk.group_required {
            return Err(violation);
        }
        walk.error.map_or(Ok(()), |(_, violation)| Err(violation))
    }
}

/// One validation pass over a message's fields.
struct Walk<'a> {
    dictionary: &'a Dictionary,
    raw: &'a [u8],
    fields: &'a mut [Field],
    /// The first field-level failure, by field index.
    error: Option<(usize, Violation)>,
    group_required: Option<Violation>,
}

impl Walk<'_> {
    fn record(&mut self, index: usize, violation: Violation) {
        if self.error.is_none_or(|(at, _)| index < at) {
            self.error = Some((index, violation));
        }
    }

    fn section(&mut self, range: Range<usize>, scope: &Scope, seen: &mut TagSet) {
        let mut pos = range.start;
        while pos < range.end {
            self.field(&mut pos, range.end, scope, 0, seen);
        }
    }

    /// Checks the field at `pos` (and the group it opens), advancing `pos` past them.
    fn field(&mut self, pos: &mut usize, end: usize, scope: &Scope, depth: u8, seen: &mut TagSet) {
        let index = *pos;
        *pos += 1;
        self.fields[index].depth = depth;
        let field = self.fields[index];
        let value = field.value_in(self.raw);
        let member = scope.member(field.tag);
        let tag = field.tag;
        if !seen.insert(tag) {
            self.record(index, Violation::at(SessionRejectReason::TagAppearsMoreThanOnce, tag));
        } else if value.is_empty() {
            self.record(index, Violation::at(SessionRejectReason::TagSpecifiedWithoutValue, tag));
        } else if let Some(definition) = self.dictionary.field(tag) {
            if let Some(reason) = definition.check(value) {
                self.record(index, Violation::at(reason, tag));
            } else if member.is_none() {
                self.record(index, Violation::at(SessionRejectReason::TagNotDefinedForMessageType, tag));
            }
        } else {
            self.record(index, Violation::at(SessionRejectReason::InvalidTagNumber, tag));
        }
        if let Some(group) = member.and_then(|member| member.group.as_deref()) {
            self.group(index, pos, end, group, depth + 1);
        }
    }

    /// Walks the instances of `group` that follow its count field at `count_index`.
    fn group(&mut self, count_index: usize, pos: &mut usize, end: usize, group: &Group, depth: u8) {
        let declared = parse_u64(self.fields[count_index].value_in(self.raw));
        let scope = &group.scope;
        let mut instances = 0;
        while *pos < end && self.fields[*pos].tag == scope.delimiter {
            instances += 1;
            let mut seen = TagSet::default();
            self.field(pos, end, scope, depth, &mut seen);
            while *pos < end {
                let tag = self.fields[*pos].tag;
                if tag == scope.delimiter || scope.member(tag).is_none() {
                    break;
                }
                self.field(pos, end, scope, depth, &mut seen);
            }
            if self.group_required.is_none()
                && let Some(&tag) = scope.required.iter().find(|&&tag| !seen.contains(tag))
            {
                self.group_required = Some(Violation::at(SessionRejectReason::RequiredTagMissing, tag));
            }
        }
        if declared.is_some_and(|count| count != instances) {
            self.record(count_index, Violation::at(SessionRejectReason::IncorrectNumInGroupCount, group.count_tag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix44_dictionary_loads() {
        let dictionary = Dictionary::fix44().unwrap();
        assert_eq!(dictionary.message_name(b"D"), Some("NewOrderSingle"));
        assert!(dictionary.is_admin(b"A") && !dictionary.is_admin(b"D"));
        assert!(dictionary.is_header_tag(34) && !dictionary.is_header_tag(11));
        assert!(dictionary.data_fields().contains(&(96, 95)) && dictionary.data_fields().contains(&(355, 354)));
        let new_order = dictionary.message(b"D").unwrap();
        assert_eq!(new_order.body.required, vec![11, 40, 54, 60]);
        let trading_sessions = new_order.body.member(386).unwrap().group.as_ref().unwrap();
        assert_eq!(trading_sessions.scope.delimiter, 336);
    }

    #[test]
    fn numbers_follow_the_fix_formats() {
        assert!(is_float(b"002000.00") && is_float(b"-1") && is_float(b".5") && is_float(b"5."));
        assert!(!is_float(b"+200.00") && !is_float(b"1e5") && !is_float(b".") && !is_float(b"1.2.3"));
        assert!(is_int(b"-12") && !is_int(b"+12") && !is_int(b"1.0"));
    }
}
