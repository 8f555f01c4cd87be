//! What a location key names.
//!
//! ```text
//! file:/srv/catalog/**/catalog-info.yaml           a path or a glob on disk
//! url:https://example.com/catalog-info.yaml        one document over HTTP(S)
//! git:https://git.example.com/acme/repo.git        a repository; `#ref=…&path=…` optional
//! git:file:///srv/mirrors/repo.git#ref=main&path=services/*/catalog-info.yaml
//! ```
//!
//! Git locations read `ref` (default `HEAD`) and every file matching `path` (default
//! `**/catalog-info.yaml`). Their documents are named like a git host's view URLs,
//! `<repository>/blob/<ref>/<path>`, so placeholders resolve as they would on GitHub.

use std::fmt;

/// The default files a git location reads.
pub const DEFAULT_GIT_PATH: &str = "**/catalog-info.yaml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationSpec {
    /// A path or a glob.
    File {
        pattern: String,
    },
    Url {
        url: url::Url,
    },
    Git {
        repository: url::Url,
        reference: String,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location {key:?}: {reason}")]
pub struct SpecError {
    pub key: String,
    pub reason: String,
}

impl LocationSpec {
    pub fn parse(key: &str) -> Result<Self, SpecError> {
        let error = |reason: String| SpecError {
            key: key.to_owned(),
            reason,
        };
        let (kind, target) = key
            .split_once(':')
            .ok_or_else(|| error("expected `type:target`".into()))?;
        if target.trim().is_empty() {
            return Err(error("the target is empty".into()));
        }
        match kind {
            "file" => {
                if !target.starts_with('/') {
                    return Err(error("file targets are absolute paths".into()));
                }
                Ok(LocationSpec::File {
                    pattern: target.to_owned(),
                })
            }
            "url" => {
                let url = url::Url::parse(target).map_err(|e| error(e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(error(format!(
                        "url locations are http or https, not {}",
                        url.scheme()
                    )));
                }
                Ok(LocationSpec::Url { url })
            }
            "git" => {
                let (repository, options) = match target.rsplit_once('#') {
                    Some((repository, options)) => (repository, options),
                    None => (target, ""),
                };
                let repository =
                    url::Url::parse(repository).map_err(|e| error(format!("repository: {e}")))?;
                if !matches!(repository.scheme(), "https" | "http" | "git" | "file") {
                    return Err(error(format!(
                        "git repositories are reached over https, http, git or file, not {}",
                        repository.scheme()
                    )));
                }
                let mut reference = "HEAD".to_owned();
                let mut path = DEFAULT_GIT_PATH.to_owned();
                for pair in options.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("ref", value)) if !value.is_empty() => reference = value.to_owned(),
                        Some(("path", value)) if !value.is_empty() => {
                            path = value.trim_start_matches('/').to_owned();
                        }
                        _ => return Err(error(format!("unknown git option {pair:?}"))),
                    }
                }
                if reference.starts_with('-') || reference.contains("..") {
                    return Err(error(format!("{reference:?} is not a usable ref")));
                }
                Ok(LocationSpec::Git {
                    repository,
                    reference,
                    path,
                })
            }
            other => Err(error(format!(
                "location type {other:?} is not supported (file, url, git)"
            ))),
        }
    }

    /// The `type` part of the key.
    pub fn kind(&self) -> &'static str {
        match self {
            LocationSpec::File { .. } => "file",
            LocationSpec::Url { .. } => "url",
            LocationSpec::Git { .. } => "git",
        }
    }
}

impl fmt::Display for LocationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationSpec::File { pattern } => write!(f, "file:{pattern}"),
            LocationSpec::Url { url } => write!(f, "url:{url}"),
            LocationSpec::Git {
                repository,
                reference,
                path,
            } => write!(f, "git:{repository}#ref={reference}&path={path}"),
        }
    }
}

/// The name of a file read from a git location: `<repository>/blob/<ref>/<path>`.
pub fn git_document_target(repository: &url::Url, reference: &str, path: &str) -> String {
    let base = repository.as_str().trim_end_matches('/');
    let base = base.strip_suffix(".git").unwrap_or(base);
    format!("{base}/blob/{reference}/{path}")
}

/// The path inside the repository of a document target, when it belongs to it.
pub fn git_path_of<'a>(repository: &url::Url, reference: &str, target: &'a str) -> Option<&'a str> {
    let prefix = git_document_target(repository, reference, "");
    target.strip_prefix(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type_and_refuses_the_rest() {
        assert_eq!(
            LocationSpec::parse("file:/srv/*.yaml").unwrap(),
            LocationSpec::File {
                pattern: "/srv/*.yaml".into()
            }
        );
        assert!(matches!(
            LocationSpec::parse("url:https://example.com/a.yaml").unwrap(),
            LocationSpec::Url { .. }
        ));
        let git = LocationSpec::parse(
            "git:https://git.example.com/acme/repo.git#ref=main&path=/svc/*/catalog-info.yaml",
        )
        .unwrap();
        assert_eq!(
            git,
            LocationSpec::Git {
                repository: url::Url::parse("https://git.example.com/acme/repo.git").unwrap(),
                reference: "main".into(),
                path: "svc/*/catalog-info.yaml".into(),
            }
        );
        let plain = LocationSpec::parse("git:file:///srv/repo").unwrap();
        assert!(
            matches!(plain, LocationSpec::Git { ref reference, ref path, .. } if reference == "HEAD" && path == DEFAULT_GIT_PATH)
        );
        for bad in [
            "nothing",
            "file:relative/x.yaml",
            "url:ftp://example.com/a",
            "git:ssh://example.com/repo#ref=main",
            "git:https://example.com/repo#ref=--upload-pack=x",
            "git:https://example.com/repo#branch=main",
            "svn:https://example.com/repo",
            "file:",
        ] {
            assert!(LocationSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_documents_are_named_like_a_git_host() {
        let repository = url::Url::parse("https://git.example.com/acme/repo.git").unwrap();
        let target = git_document_target(&repository, "main", "svc/a/catalog-info.yaml");
        assert_eq!(
            target,
            "https://git.example.com/acme/repo/blob/main/svc/a/catalog-info.yaml"
        );
        assert_eq!(
            git_path_of(&repository, "main", &target),
            Some("svc/a/catalog-info.yaml")
        );
        assert_eq!(
            git_path_of(&repository, "main", "https://elsewhere/x"),
            None
        );
    }
}
