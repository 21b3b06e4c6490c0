//! AWS Bedrock's error-type header.
//!
//! The shape, in our words: Bedrock (like other AWS REST-JSON services) names the exception in an
//! `x-amzn-ErrorType` header, optionally followed by `:` and a namespace URL
//! (`ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/`); the body is a
//! small `{"message": ...}` document read by [`flat`](super::flat). The exception name before the
//! colon becomes the code when the body did not carry one (`ThrottlingException` is
//! `RateLimited`, `ValidationException` is `InvalidRequest`, `ServiceQuotaExceededException` is
//! `QuotaExceeded`, `ModelTimeoutException` is `RequestTimeout`, ...). The request id comes from
//! `x-amzn-RequestId`, read with the other request-id headers.

use super::{Fields, MAX_FIELD_CHARS, clean};
use crate::error::hints::{Present, Slot};
use http::HeaderMap;

pub(super) fn read(headers: &HeaderMap, present: &Present<'_>, f: &mut Fields) {
    if f.code.is_some() {
        return;
    }
    let Some(v) = present.str(headers, Slot::AmznErrorType) else {
        return;
    };
    let name = v.split(':').next().unwrap_or(v).trim();
    if !name.is_empty() {
        f.code = Some(clean(name, MAX_FIELD_CHARS));
    }
}
