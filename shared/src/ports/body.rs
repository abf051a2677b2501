//! An item's body: its record as JSON text.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A record as JSON text, as the embedded store keeps it. Carried as text, shared: a record is
/// printed once when written and parsed once when read, straight to and from its type. Reading
/// a row, keeping a pending write and handing it to the writer copy no tree of values (building,
/// cloning and dropping those trees was a tenth of the local server's CPU per request).
#[derive(Debug, Clone)]
pub struct Body(Arc<str>);

impl Body {
    /// The record printed as JSON.
    pub fn encode<T: Serialize + ?Sized>(record: &T) -> Result<Body, serde_json::Error> {
        serde_json::to_string(record).map(|text| Body(text.into()))
    }

    /// Text a store kept: parsed only when decoded.
    pub fn from_text(text: &str) -> Body {
        Body(text.into())
    }

    /// The record, parsed from the text.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The JSON document, for stores that keep it as a structure (DynamoDB's map).
    pub fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.decode()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<serde_json::Value> for Body {
    fn from(value: serde_json::Value) -> Self {
        Body(value.to_string().into())
    }
}

/// The same document: equal text, or text that parses to equal values (a store that keeps a
/// structure may give back its keys in another order).
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || matches!((self.value(), other.value()), (Ok(a), Ok(b)) if a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_comes_back_as_it_was_written() {
        #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Record {
            id: String,
            amount: rust_decimal::Decimal,
        }
        let record = Record { id: "p_1".into(), amount: "12.30".parse().unwrap() };
        let body = Body::encode(&record).unwrap();
        assert_eq!(body.as_str(), r#"{"id":"p_1","amount":"12.30"}"#);
        assert_eq!(body.decode::<Record>().unwrap(), record);
    }

    #[test]
    fn bodies_are_equal_when_their_documents_are() {
        let written = Body::from_text(r#"{"b":1,"a":[true,null]}"#);
        assert_eq!(written, Body::from(json!({"a": [true, null], "b": 1})));
        assert_ne!(written, Body::from(json!({"a": [true, null], "b": 2})));
        assert_ne!(Body::from_text("{"), Body::from_text("{}"));
    }

    #[test]
    fn text_that_is_not_json_fails_when_decoded() {
        assert!(Body::from_text("not json").decode::<serde_json::Value>().is_err());
    }
}
