//! Object ids in serialized records: written and read as their hex text, the shape records
//! have always had on disk, so `git2` stays inside `git/` while records hold typed ids.

use serde::{Deserialize, Deserializer, Serializer};

use super::Oid;

pub fn serialize<S: Serializer>(oid: &Oid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&oid.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Oid, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

fn parse(text: &str) -> Result<Oid, String> {
    // libgit2 accepts a short prefix and pads it with zeros; a record holds full ids only.
    if !matches!(text.len(), 40 | 64) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{text}' is not a full object id"));
    }
    Oid::from_str(text).map_err(|err| err.message().to_owned())
}

/// The same for `Option<Oid>`, `null` for `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Oid;

    pub fn serialize<S: Serializer>(oid: &Option<Oid>, serializer: S) -> Result<S::Ok, S::Error> {
        match oid {
            Some(oid) => super::serialize(oid, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Oid>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::Oid;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Ids {
        #[serde(with = "super")]
        id: Oid,
        #[serde(with = "super::option", default)]
        maybe: Option<Oid>,
    }

    #[test]
    fn ids_are_stored_as_full_hex_and_short_or_bad_ones_are_refused() {
        let hex = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        let json = format!(r#"{{"id":"{hex}","maybe":null}}"#);
        let ids: Ids = serde_json::from_str(&json).unwrap();
        assert_eq!(ids.id.to_string(), hex);
        assert_eq!(serde_json::to_string(&ids).unwrap(), json);
        let missing: Ids = serde_json::from_str(&format!(r#"{{"id":"{hex}"}}"#)).unwrap();
        assert_eq!(missing.maybe, None);
        for bad in ["4b825dc", "zz825dc642cb6eb9a060e54bf8d69288fbee4904", ""] {
            let json = format!(r#"{{"id":"{bad}"}}"#);
            assert!(serde_json::from_str::<Ids>(&json).is_err(), "{bad:?}");
        }
    }
}
