//! FIX tag numbers the session layer and the applications use by name, and the two
//! standard rejection code lists: SessionRejectReason (373) and BusinessRejectReason (380).

/// A tag number. Signed because an inbound message may carry a negative tag, which is
/// rejected with its value echoed in RefTagID (371).
pub type Tag = i32;

pub const ACCOUNT: Tag = 1;
pub const AVG_PX: Tag = 6;
pub const BEGIN_SEQ_NO: Tag = 7;
pub const BEGIN_STRING: Tag = 8;
pub const BODY_LENGTH: Tag = 9;
pub const CHECK_SUM: Tag = 10;
pub const CL_ORD_ID: Tag = 11;
pub const CUM_QTY: Tag = 14;
pub const END_SEQ_NO: Tag = 16;
pub const EXEC_ID: Tag = 17;
pub const LAST_PX: Tag = 31;
pub const LAST_QTY: Tag = 32;
pub const MSG_SEQ_NUM: Tag = 34;
pub const MSG_TYPE: Tag = 35;
pub const NEW_SEQ_NO: Tag = 36;
pub const ORDER_ID: Tag = 37;
pub const ORDER_QTY: Tag = 38;
pub const ORD_STATUS: Tag = 39;
pub const ORD_TYPE: Tag = 40;
pub const ORIG_CL_ORD_ID: Tag = 41;
pub const POSS_DUP_FLAG: Tag = 43;
pub const PRICE: Tag = 44;
pub const REF_SEQ_NUM: Tag = 45;
pub const SENDER_COMP_ID: Tag = 49;
pub const SENDING_TIME: Tag = 52;
pub const SIDE: Tag = 54;
pub const SYMBOL: Tag = 55;
pub const TARGET_COMP_ID: Tag = 56;
pub const TEXT: Tag = 58;
pub const TIME_IN_FORCE: Tag = 59;
pub const TRANSACT_TIME: Tag = 60;
pub const ENCRYPT_METHOD: Tag = 98;
pub const HEART_BT_INT: Tag = 108;
pub const TEST_REQ_ID: Tag = 112;
pub const ON_BEHALF_OF_COMP_ID: Tag = 115;
pub const ON_BEHALF_OF_SUB_ID: Tag = 116;
pub const POSS_RESEND: Tag = 97;
pub const CXL_REJ_REASON: Tag = 102;
pub const ORD_REJ_REASON: Tag = 103;
pub const ORIG_SENDING_TIME: Tag = 122;
pub const GAP_FILL_FLAG: Tag = 123;
pub const DELIVER_TO_COMP_ID: Tag = 128;
pub const DELIVER_TO_SUB_ID: Tag = 129;
pub const RESET_SEQ_NUM_FLAG: Tag = 141;
pub const ON_BEHALF_OF_LOCATION_ID: Tag = 144;
pub const DELIVER_TO_LOCATION_ID: Tag = 145;
pub const EXEC_TYPE: Tag = 150;
pub const LEAVES_QTY: Tag = 151;
pub const REF_TAG_ID: Tag = 371;
pub const REF_MSG_TYPE: Tag = 372;
pub const SESSION_REJECT_REASON: Tag = 373;
pub const BUSINESS_REJECT_REF_ID: Tag = 379;
pub const BUSINESS_REJECT_REASON: Tag = 380;
pub const CXL_REJ_RESPONSE_TO: Tag = 434;
pub const USERNAME: Tag = 553;
pub const PASSWORD: Tag = 554;

/// The routing pairs that a reply reverses (OnBehalfOf* ↔ DeliverTo*).
pub const REVERSE_ROUTES: [(Tag, Tag); 6] = [
    (ON_BEHALF_OF_COMP_ID, DELIVER_TO_COMP_ID),
    (DELIVER_TO_COMP_ID, ON_BEHALF_OF_COMP_ID),
    (ON_BEHALF_OF_SUB_ID, DELIVER_TO_SUB_ID),
    (DELIVER_TO_SUB_ID, ON_BEHALF_OF_SUB_ID),
    (ON_BEHALF_OF_LOCATION_ID, DELIVER_TO_LOCATION_ID),
    (DELIVER_TO_LOCATION_ID, ON_BEHALF_OF_LOCATION_ID),
];

/// SessionRejectReason (373), FIX 4.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionRejectReason {
    InvalidTagNumber,
    RequiredTagMissing,
    TagNotDefinedForMessageType,
    UndefinedTag,
    TagSpecifiedWithoutValue,
    ValueIsIncorrect,
    IncorrectDataFormat,
    DecryptionProblem,
    SignatureProblem,
    CompIdProblem,
    SendingTimeAccuracyProblem,
    InvalidMsgType,
    XmlValidationError,
    TagAppearsMoreThanOnce,
    TagSpecifiedOutOfRequiredOrder,
    RepeatingGroupFieldsOutOfOrder,
    IncorrectNumInGroupCount,
    NonDataValueIncludesFieldDelimiter,
    Other,
}

impl SessionRejectReason {
    /// The code sent in SessionRejectReason (373).
    pub fn code(self) -> u32 {
        match self {
            Self::InvalidTagNumber => 0,
            Self::RequiredTagMissing => 1,
            Self::TagNotDefinedForMessageType => 2,
            Self::UndefinedTag => 3,
            Self::TagSpecifiedWithoutValue => 4,
            Self::ValueIsIncorrect => 5,
            Self::IncorrectDataFormat => 6,
            Self::DecryptionProblem => 7,
            Self::SignatureProblem => 8,
            Self::CompIdProblem => 9,
            Self::SendingTimeAccuracyProblem => 10,
            Self::InvalidMsgType => 11,
            Self::XmlValidationError => 12,
            Self::TagAppearsMoreThanOnce => 13,
            Self::TagSpecifiedOutOfRequiredOrder => 14,
            Self::RepeatingGroupFieldsOutOfOrder => 15,
            Self::IncorrectNumInGroupCount => 16,
            Self::NonDataValueIncludesFieldDelimiter => 17,
            Self::Other => 99,
        }
    }

    /// The Text (58) sent with it: the code's name in the FIX specification.
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidTagNumber => "Invalid tag number",
            Self::RequiredTagMissing => "Required tag missing",
            Self::TagNotDefinedForMessageType => "Tag not defined for this message type",
            Self::UndefinedTag => "Undefined Tag",
            Self::TagSpecifiedWithoutValue => "Tag specified without a value",
            Self::ValueIsIncorrect => "Value is incorrect (out of range) for this tag",
            Self::IncorrectDataFormat => "Incorrect data format for value",
            Self::DecryptionProblem => "Decryption problem",
            Self::SignatureProblem => "Signature problem",
            Self::CompIdProblem => "CompID problem",
            Self::SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            Self::InvalidMsgType => "Invalid MsgType",
            Self::XmlValidationError => "XML Validation error",
            Self::TagAppearsMoreThanOnce => "Tag appears more than once",
            Self::TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            Self::RepeatingGroupFieldsOutOfOrder => "Repeating group fields out of order",
            Self::IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
            Self::NonDataValueIncludesFieldDelimiter => "Non Data value includes field delimiter (SOH character)",
            Self::Other => "Other",
        }
    }
}

/// BusinessRejectReason (380), FIX 4.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BusinessRejectReason {
    Other,
    UnknownId,
    UnknownSecurity,
    UnsupportedMessageType,
    ApplicationNotAvailable,
    ConditionallyRequiredFieldMissing,
    NotAuthorized,
    DeliverToFirmNotAvailable,
}

impl BusinessRejectReason {
    /// The code sent in BusinessRejectReason (380).
    pub fn code(self) -> u32 {
        match self {
            Self::Other => 0,
            Self::UnknownId => 1,
            Self::UnknownSecurity => 2,
            Self::UnsupportedMessageType => 3,
            Self::ApplicationNotAvailable => 4,
            Self::ConditionallyRequiredFieldMissing => 5,
            Self::NotAuthorized => 6,
            Self::DeliverToFirmNotAvailable => 7,
        }
    }

    /// The code's name in the FIX specification, the default Text (58).
    pub fn text(self) -> &'static str {
        match self {
            Self::Other => "Other",
            Self::UnknownId => "Unknown ID",
            Self::UnknownSecurity => "Unknown Security",
            Self::UnsupportedMessageType => "Unsupported Message Type",
            Self::ApplicationNotAvailable => "Application not available",
            Self::ConditionallyRequiredFieldMissing => "Conditionally Required Field Missing",
            Self::NotAuthorized => "Not authorized",
            Self::DeliverToFirmNotAvailable => "DeliverTo firm not available at this time",
        }
    }
}
