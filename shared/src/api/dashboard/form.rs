//! `application/x-www-form-urlencoded` bodies. A field given twice is refused, as duplicate JSON
//! keys are on the API: two readers could pick different values. The one exception is a list
//! field (`LIST_FIELDS`: the queue's checkboxes), whose every value is kept, in order.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::page::DashError;

/// Fields that may be given many times (checkboxes sharing a name).
const LIST_FIELDS: [&str; 1] = ["ids"];

/// A submitted form's fields.
#[derive(Debug, Default)]
pub struct Form {
    fields: HashMap<String, String>,
    lists: HashMap<String, Vec<String>>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, DashError> {
        let mut form = Form::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            if LIST_FIELDS.contains(&name.as_ref()) {
                form.lists.entry(name.to_string()).or_default().push(value.to_string());
            } else if form.fields.insert(name.to_string(), value.to_string()).is_some() {
                return Err(DashError::bad_request(format!("The field {name} was sent twice.")));
            }
        }
        Ok(form)
    }

    /// A field's value, `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// Every value of a list field, in the order sent (none when absent).
    pub fn list(&self, name: &str) -> &[String] {
        self.lists.get(name).map_or(&[], Vec::as_slice)
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = DashError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim() == "application/x-www-form-urlencoded"));
        if !form_type {
            return Err(DashError::bad_request("Send this form from the dashboard page (a URL-encoded form)."));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DashError::new(StatusCode::PAYLOAD_TOO_LARGE, "Too large", "The form was too large.")
            } else {
                DashError::bad_request("The form could not be read.")
            }
        })?;
        Form::parse(&bytes)
    }
}

/// The one path parameter of a route (an id, a review-link token); a path that does not decode
/// names nothing (404 page).
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|_| DashError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_decode_and_duplicates_are_refused() {
        let form = Form::parse(b"note=a+b%26c&amount=&action=approve").unwrap();
        assert_eq!(form.get("note"), Some("a b&c"));
        assert_eq!(form.get("amount"), None, "blank reads as absent");
        assert_eq!(form.get("missing"), None);
        let err = Form::parse(b"action=approve&action=reject").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let form = Form::parse(b"ids=apr_b&action=approve&ids=apr_a").unwrap();
        assert_eq!(form.list("ids"), ["apr_b", "apr_a"], "checkboxes: every value, in order");
        assert_eq!((form.get("ids"), form.list("action")), (None, &[][..]));
    }
}
