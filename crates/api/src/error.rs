//! The one table that maps an API error to its AWS `__type`, HTTP status and retryability.
//!
//! Every error the Firehose API answers is an [`ApiError`]: a kind from [`ErrorKind`] and a
//! message meant for the caller. The body is AWS JSON 1.1's error shape,
//! `{"__type": "<Kind>Exception", "message": "..."}`, which botocore and the Rust SDK parse into
//! their typed exceptions. 5xx messages stay generic; the cause is logged where it happens.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong, at the level a client can act on.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named stream (or other resource) does not exist.
    ResourceNotFound,
    /// A parameter is missing, malformed or outside its allowed range.
    InvalidArgument,
    /// The resource is in a state that does not allow the operation (or already exists).
    ResourceInUse,
    /// A quota would be exceeded (streams, tags, encryption toggles).
    LimitExceeded,
    /// `CurrentDeliveryStreamVersionId` does not match the stream's version.
    ConcurrentModification,
    /// The KMS key given cannot be used.
    InvalidKmsResource,
    /// The request's source is not allowed for this stream.
    InvalidSource,
    /// The service cannot take the request now; the client should back off and retry.
    ServiceUnavailable,
    /// The request body is not valid JSON of the expected shape.
    Serialization,
    /// `X-Amz-Target` names no known operation.
    UnknownOperation,
    /// A bug or an unexpected local failure; details are only in the server log.
    Internal,
    /// Glue: the database, table or partition does not exist.
    EntityNotFound,
    /// Glue: the entity already exists.
    AlreadyExists,
    /// Glue: a parameter is invalid.
    InvalidInput,
    /// Athena: the request is invalid (missing or out-of-range parameter, unknown query
    /// execution, results not available yet).
    InvalidRequest,
    /// Athena: too many queries are queued or running; the client should back off.
    TooManyRequests,
    /// The request body is larger than the endpoint accepts (HTTP 413); it was not read past
    /// the limit.
    RequestTooLarge,
    /// The request body did not arrive within the server's body read timeout (HTTP 408).
    RequestTimeout,
    /// Authentication is on and the request carries no `Authorization` header (HTTP 403).
    MissingAuthenticationToken,
    /// The `Authorization` header is malformed or lacks a required part (`Credential`,
    /// `SignedHeaders`, `Signature`, a signed `host` and `x-amz-date`).
    IncompleteSignature,
    /// The access key id is not one the server knows.
    UnrecognizedClient,
    /// The signature does not match, is outside the allowed clock skew, or its credential scope
    /// is wrong (date, service, terminator).
    InvalidSignature,
    /// The caller's policy does not allow the action on the resource.
    AccessDenied,
    /// Kinesis Analytics: the application's SQL is not valid.
    CodeValidation,
}

impl ErrorKind {
    /// The AWS `__type` string of this kind.
    pub fn aws_type(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::ConcurrentModification => "ConcurrentModificationException",
            ErrorKind::InvalidKmsResource => "InvalidKMSResourceException",
            ErrorKind::InvalidSource => "InvalidSourceException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::Internal => "InternalFailure",
            ErrorKind::EntityNotFound => "EntityNotFoundException",
            ErrorKind::AlreadyExists => "AlreadyExistsException",
            ErrorKind::InvalidInput => "InvalidInputException",
            ErrorKind::InvalidRequest => "InvalidRequestException",
            ErrorKind::TooManyRequests => "TooManyRequestsException",
            ErrorKind::RequestTooLarge => "RequestEntityTooLargeException",
            ErrorKind::RequestTimeout => "RequestTimeoutException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::CodeValidation => "CodeValidationException",
        }
    }

    /// The HTTP status AWS answers with for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether a client may succeed by sending the same request again later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::ServiceUnavailable
                | ErrorKind::Internal
                | ErrorKind::ConcurrentModification
                | ErrorKind::TooManyRequests
                | ErrorKind::RequestTimeout
        )
    }
}

/// An error answered to an API caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.aws_type())]
pub struct ApiError {
    /// What kind of failure; decides `__type` and status.
    pub kind: ErrorKind,
    /// The message shown to the caller.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// `InvalidArgumentException` with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// `ResourceNotFoundException` for the stream `name`, worded as AWS words it.
    pub fn stream_not_found(name: &str) -> Self {
        Self::new(
            ErrorKind::ResourceNotFound,
            format!("Firehose {name} not found under account 000000000000."),
        )
    }
    /// `ResourceInUseException` with `message`.
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceInUse, message)
    }
    /// `ServiceUnavailableException` with `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }
    /// `InternalFailure`; the message shown is generic, `cause` goes to the server log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal failure answering an API request");
        Self::new(
            ErrorKind::Internal,
            "An internal error occurred. Try again later.",
        )
    }
    /// The AWS JSON 1.1 error body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.kind.aws_type(), "message": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        (
            self.kind.status(),
            [(axum::http::header::CONTENT_TYPE, crate::CONTENT_TYPE)],
            body,
        )
            .into_response()
    }
}

/// `Result` with [`ApiError`] as the default error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_aws() {
        let e = ApiError::stream_not_found("s");
        assert_eq!(e.kind.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["__type"], "ResourceNotFoundException");
        assert_eq!(
            ErrorKind::ServiceUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(ErrorKind::ServiceUnavailable.retryable());
        assert!(!ErrorKind::InvalidArgument.retryable());
        assert_eq!(
            ErrorKind::InvalidKmsResource.aws_type(),
            "InvalidKMSResourceException"
        );
        assert_eq!(
            ErrorKind::MissingAuthenticationToken.status(),
            StatusCode::FORBIDDEN
        );
        for kind in [
            ErrorKind::IncompleteSignature,
            ErrorKind::UnrecognizedClient,
            ErrorKind::InvalidSignature,
            ErrorKind::AccessDenied,
        ] {
            assert_eq!(kind.status(), StatusCode::BAD_REQUEST);
            assert!(!kind.retryable());
        }
    }
}
