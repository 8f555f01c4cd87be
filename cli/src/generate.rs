//! `cadastre generate`: a deterministic synthetic organisation (`cadastre-synth`) written as
//! catalog files into local git repositories, one per owning team (teams share repositories
//! beyond `max_repos`), plus one for the organisation's groups and users, and a root
//! `catalog-info.yaml` whose `Location` points at every repository. Register that file (or
//! the folder) and the whole organisation flows in through the harvester, as a real one would.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cadastre_synth::Organisation;
use rayon::prelude::*;
use serde_json::Value;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub size: usize,
    pub seed: u64,
    /// A folder that does not exist yet, or is empty.
    pub out: PathBuf,
    /// At most this many team repositories (teams beyond share them).
    pub max_repos: usize,
    /// Entities per file (YAML documents separated by `---`).
    pub per_file: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub entities: usize,
    pub repositories: usize,
    pub files: usize,
    /// The root `catalog-info.yaml` to register.
    pub root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0} is not empty: generate into a new folder")]
    NotEmpty(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("git {args} in {repo}: {message}")]
    Git {
        repo: PathBuf,
        args: String,
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One repository being written: its folder, the file open now and how full it is.
struct Repo {
    dir: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    in_file: usize,
    files: usize,
}

impl Repo {
    fn write(&mut self, entity: &Value, per_file: usize) -> Result<(), GenerateError> {
        if self.file.is_none() || self.in_file >= per_file {
            if let Some(mut full) = self.file.take() {
                full.flush().map_err(io(&self.dir))?;
            }
            let path = self
                .dir
                .join("catalog")
                .join(format!("entities-{:05}.yaml", self.files));
            let file = std::fs::File::create(&path).map_err(io(&path))?;
            self.file = Some(std::io::BufWriter::new(file));
            self.files += 1;
            self.in_file = 0;
        }
        let file = self.file.as_mut().unwrap_or_else(|| unreachable!());
        // JSON is YAML: one flow-style document per entity.
        if self.in_file > 0 {
            file.write_all(b"---\n").map_err(io(&self.dir))?;
        }
        serde_json::to_writer(&mut *file, entity)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .map_err(io(&self.dir))?;
        file.write_all(b"\n").map_err(io(&self.dir))?;
        self.in_file += 1;
        Ok(())
    }
}

/// Writes the organisation; `progress(entities written)` is called every 100,000.
pub fn run(options: &Options, mut progress: impl FnMut(usize)) -> Result<Generated, GenerateError> {
    let out = &options.out;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(GenerateError::NotEmpty(out.clone()));
    }
    std::fs::create_dir_all(out.join("repos")).map_err(io(out))?;
    let out = std::fs::canonicalize(out).map_err(io(out))?;
    let organisation = Organisation::new(options.seed, options.size);
    let max_repos = options.max_repos.max(1);
    let per_file = options.per_file.max(1);
    let mut repos: Vec<Repo> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut by_owner: HashMap<String, usize> = HashMap::new();
    for index in 0..organisation.len() {
        let entity = organisation.entity(index);
        // Groups and users live in the organisation's repository; the rest with their owner.
        let owner = match entity["kind"].as_str() {
            Some("Group" | "User") => "org".to_owned(),
            _ => entity["spec"]["owner"]
                .as_str()
                .unwrap_or("unowned")
                .to_owned(),
        };
        let next = by_owner.len();
        let slot = *by_owner.entry(owner.clone()).or_insert_with(|| {
            if owner == "org" {
                usize::MAX
            } else {
                next % max_repos
            }
        });
        let name = if slot == usize::MAX {
            "org".to_owned()
        } else {
            format!("team-{slot:04}")
        };
        let position = match positions.get(&name) {
            Some(&position) => position,
            None => {
                let dir = out.join("repos").join(&name);
                std::fs::create_dir_all(dir.join("catalog")).map_err(io(&dir))?;
                repos.push(Repo {
                    dir,
                    file: None,
                    in_file: 0,
                    files: 0,
                });
                positions.insert(name, repos.len() - 1);
                repos.len() - 1
            }
        };
        repos[position].write(&entity, per_file)?;
        if (index + 1) % 100_000 == 0 {
            progress(index + 1);
        }
    }
    for repo in &mut repos {
        if let Some(mut file) = repo.file.take() {
            file.flush().map_err(io(&repo.dir))?;
        }
    }
    repos.par_iter().try_for_each(|repo| commit(&repo.dir))?;
    let root = out.join("catalog-info.yaml");
    let targets: Vec<String> = repos
        .iter()
        .map(|repo| format!("file://{}#ref=main&path=catalog/*.yaml", repo.dir.display()))
        .collect();
    let location = serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": "generated-organisation",
            "description": format!("{} synthetic entities (seed {})", organisation.len(), options.seed),
        },
        "spec": {"type": "git", "targets": targets},
    });
    std::fs::write(&root, format!("{location}\n")).map_err(io(&root))?;
    Ok(Generated {
        entities: organisation.len(),
        repositories: repos.len(),
        files: repos.iter().map(|repo| repo.files).sum(),
        root,
    })
}

/// `git init` and one commit of everything, as a fixed author.
fn commit(repo: &Path) -> Result<(), GenerateError> {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "generated catalog"],
    ] {
        git(repo, args)?;
    }
    Ok(())
}

/// Runs `git` in `repo` as the generator's fixed author, without background housekeeping;
/// its trimmed output (the benchmark commits into generated repositories with it too).
pub(crate) fn git(repo: &Path, args: &[&str]) -> Result<String, GenerateError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "gc.auto=0"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Cadastre")
        .env("GIT_AUTHOR_EMAIL", "cadastre@example.invalid")
        .env("GIT_COMMITTER_NAME", "Cadastre")
        .env("GIT_COMMITTER_EMAIL", "cadastre@example.invalid")
        .output()
        .map_err(io(repo))?;
    if !output.status.success() {
        return Err(GenerateError::Git {
            repo: repo.to_owned(),
            args: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(out: &Path, seed: u64) -> Generated {
        run(
            &Options {
                size: 2_000,
                seed,
                out: out.to_owned(),
                max_repos: 5,
                per_file: 100,
            },
            |_| {},
        )
        .unwrap()
    }

    #[test]
    fn the_same_seed_writes_the_same_organisation_into_team_repositories() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = generate(&a.path().join("org"), 7);
        let second = generate(&b.path().join("org"), 7);
        assert_eq!(first.entities, second.entities);
        assert_eq!(
            first.repositories, 6,
            "five team repositories and the organisation's"
        );
        let read = |root: &Path, repo: &str| {
            std::fs::read_to_string(
                root.join("repos")
                    .join(repo)
                    .join("catalog/entities-00000.yaml"),
            )
            .unwrap()
        };
        assert_eq!(
            read(&a.path().join("org"), "team-0000"),
            read(&b.path().join("org"), "team-0000")
        );
        // Every entity written once, each repository committed.
        let documents: usize = walkdir::WalkDir::new(a.path().join("org/repos"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .matches("\"apiVersion\"")
                    .count()
            })
            .sum();
        assert_eq!(documents, first.entities);
        let log = Command::new("git")
            .arg("-C")
            .arg(a.path().join("org/repos/org"))
            .args(["log", "--oneline"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains("generated catalog"));
        // The root Location names every repository.
        let root: Value =
            serde_json::from_str(&std::fs::read_to_string(&first.root).unwrap()).unwrap();
        assert_eq!(root["spec"]["targets"].as_array().unwrap().len(), 6);
        // Refuses to write over something.
        let refused = run(
            &Options {
                size: 10,
                seed: 7,
                out: a.path().join("org"),
                max_repos: 5,
                per_file: 100,
            },
            |_| {},
        );
        assert!(matches!(refused, Err(GenerateError::NotEmpty(_))));
    }

    #[test]
    fn every_entity_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(&dir.path().join("org"), 3);
        let validator = cadastre_model::Validator::default();
        let reader = cadastre_model::CatalogReader {
            validator: &validator,
            limits: cadastre_model::Limits::default(),
            placeholders: &NoReads,
        };
        let mut valid = 0;
        for entry in walkdir::WalkDir::new(dir.path().join("org/repos"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        {
            let report = reader.read(
                &entry.path().to_string_lossy(),
                &std::fs::read(entry.path()).unwrap(),
            );
            assert_eq!(report.error_count(), 0, "{:?}", report.findings);
            valid += report.valid_entities().count();
        }
        assert_eq!(valid, generated.entities);
    }

    struct NoReads;

    impl cadastre_model::PlaceholderReader for NoReads {
        fn read(&self, target: &str) -> Result<cadastre_model::ReadOutcome, String> {
            Err(format!("no reads here: {target}"))
        }
    }
}
