//! Query strings as Backstage reads them: parameters may repeat (`filter=…&filter=…`), and a
//! parameter a route does not know is refused (its validator has
//! `allowUnknownQueryParameters: false`).

use crate::error::ApiError;

/// The parameters of one request, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `query`, refusing parameters not in `known`.
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
        if let Some((unknown, _)) = pairs.iter().find(|(key, _)| !known.contains(&key.as_str())) {
            return Err(ApiError::input(format!(
                "Unknown query parameter '{unknown}'; this route takes {}",
                known.join(", ")
            )));
        }
        Ok(Params(pairs))
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The value of `name`, which must not repeat.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [value] => Ok(Some(value)),
            _ => Err(ApiError::input(format!(
                "Query parameter '{name}' must be given once"
            ))),
        }
    }

    /// `name` as a whole number, if given.
    pub fn number(&self, name: &str) -> Result<Option<u32>, ApiError> {
        self.one(name)?
            .map(|value| {
                value.trim().parse::<u32>().map_err(|_| {
                    ApiError::input(format!(
                        "Query parameter '{name}' must be a whole number ≥ 0, not {value:?}"
                    ))
                })
            })
            .transpose()
    }

    /// Comma-separated values of every `name` parameter, trimmed, empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_lists_numbers_and_unknown_parameters() {
        let params = Params::parse(
            Some("filter=kind%3Dapi&filter=kind=user&fields=a,b&fields=c&limit=5"),
            &["filter", "fields", "limit"],
        )
        .unwrap();
        assert_eq!(params.all("filter"), vec!["kind=api", "kind=user"]);
        assert_eq!(params.list("fields"), vec!["a", "b", "c"]);
        assert_eq!(params.number("limit").unwrap(), Some(5));
        assert!(params.one("filter").is_err());
        let unknown = Params::parse(Some("colour=red"), &["filter"]).unwrap_err();
        assert!(unknown.message.contains("colour"), "{}", unknown.message);
        let bad = Params::parse(Some("limit=-1"), &["limit"]).unwrap();
        assert_eq!(bad.number("limit").unwrap_err().name, "InputError");
    }
}
