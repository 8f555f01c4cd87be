//! Git locations, through the `git` program: a bare mirror per repository in the cache
//! folder, fetched on each harvest; files read at the resolved commit with one
//! `cat-file --batch`; after the first harvest only the files changed between the last
//! harvested commit and the new one are read.
//!
//! A `file://` repository is already on this machine: it is read in place, as
//! `git clone --local` does, rather than fetched. A fetch would pack every object, send it
//! through a pipe, inflate and hash it again into the mirror (most of the CPU of a cold
//! import from local repositories) to end with a copy of what is already on the disk.
//!
//! Credentials reach git through `GIT_CONFIG_*` environment variables (never the command
//! line, never logged); prompts are disabled, so a missing credential fails instead of waiting.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::Settings;

/// What one read of a repository found.
#[derive(Debug, Default)]
pub struct GitRead {
    pub commit: String,
    /// Matching files read (all of them, or those changed since the last commit).
    pub files: Vec<(String, Vec<u8>)>,
    /// Matching files deleted since the last commit.
    pub deleted: Vec<String>,
    /// Whether `files` is every matching file (no previous commit, or it is gone).
    pub complete: bool,
    /// Files over the size limit: (path, size).
    pub too_large: Vec<(String, u64)>,
}

pub struct GitReader<'a> {
    pub settings: &'a Settings,
    /// `Authorization` header value for this repository's host, if configured.
    pub authorization: Option<&'a str>,
    /// The CA bundle git trusts: the system's plus `ca_file` (git's setting replaces, not adds).
    pub ca_bundle: Option<&'a Path>,
}

impl std::fmt::Debug for GitReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential is never printed.
        f.debug_struct("GitReader")
            .field("authorization", &self.authorization.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl GitReader<'_> {
    /// Fetches `repository` and reads the files matching `glob` at `reference`.
    pub async fn read(
        &self,
        repository: &url::Url,
        reference: &str,
        glob: &globset::GlobMatcher,
        previous_commit: Option<&str>,
    ) -> Result<GitRead, String> {
        let began = std::time::Instant::now();
        let git_dir = match local_repository(repository) {
            Some(local) if local.exists() => local,
            Some(_) => return Err(format!("{repository} does not exist")),
            None => {
                let mirror = self.mirror_path(repository);
                self.fetch(repository, &mirror).await?;
                mirror
            }
        };
        let fetched = began.elapsed();
        let commit = self
            .git(
                &git_dir,
                &[
                    "rev-parse",
                    "--verify",
                    "--end-of-options",
                    &format!("{reference}^{{commit}}"),
                ],
            )
            .await
            .map_err(|e| format!("{reference} is not a commit in {repository}: {e}"))?;
        let commit = String::from_utf8_lossy(&commit).trim().to_owned();
        let mut read = GitRead {
            commit: commit.clone(),
            ..GitRead::default()
        };
        // (path, object to read)
        let mut paths: Vec<(String, String)> = Vec::new();
        let known_previous = match previous_commit {
            Some(previous) => self
                .git(
                    &git_dir,
                    &["cat-file", "-e", &format!("{previous}^{{commit}}")],
                )
                .await
                .is_ok()
                .then_some(previous),
            None => None,
        };
        match known_previous {
            Some(previous) if previous == commit => {}
            Some(previous) => {
                // `--raw` names each new blob's id: no path is resolved again when reading.
                let diff = self
                    .git(
                        &git_dir,
                        &[
                            "diff",
                            "--raw",
                            "-z",
                            "--no-renames",
                            // A local repository is read in place, with its own settings:
                            // no external diff or text conversion program of theirs runs.
                            "--no-ext-diff",
                            "--no-textconv",
                            previous,
                            &commit,
                        ],
                    )
                    .await?;
                let fields: Vec<&[u8]> =
                    diff.split(|b| *b == 0).filter(|f| !f.is_empty()).collect();
                for pair in fields.chunks(2) {
                    let [meta, path] = pair else { continue };
                    let path = String::from_utf8_lossy(path).into_owned();
                    if !glob.is_match(&path) {
                        continue;
                    }
                    // `:100644 100644 <old id> <new id> M`
                    let meta = String::from_utf8_lossy(meta);
                    let parts: Vec<&str> = meta.split_whitespace().collect();
                    match (parts.get(3), parts.get(4)) {
                        (_, Some(status)) if status.starts_with('D') => read.deleted.push(path),
                        (Some(new_id), Some(_)) => paths.push((path, (*new_id).to_owned())),
                        _ => {}
                    }
                }
            }
            None => {
                read.complete = true;
                // `<mode> <type> <id>\t<path>`: blob ids, read without resolving paths.
                let listing = self
                    .git(&git_dir, &["ls-tree", "-r", "-z", "--full-tree", &commit])
                    .await?;
                for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
                    let entry = String::from_utf8_lossy(entry);
                    let Some((meta, path)) = entry.split_once('\t') else {
                        continue;
                    };
                    let meta: Vec<&str> = meta.split_whitespace().collect();
                    if meta.get(1) == Some(&"blob") && glob.is_match(path) {
                        paths.push((path.to_owned(), meta[2].to_owned()));
                    }
                }
            }
        }
        paths.sort();
        let listed = began.elapsed();
        let (files, too_large) = self.read_blobs(&git_dir, &paths).await?;
        read.files = files;
        read.too_large = too_large;
        tracing::debug!(
            %repository,
            files = read.files.len(),
            fetch = ?fetched,
            list = ?(listed - fetched),
            read = ?(began.elapsed() - listed),
            "git read"
        );
        Ok(read)
    }

    /// Reads files at `commit` (any path, e.g. placeholder targets): missing ones are left out.
    pub async fn read_paths(
        &self,
        repository: &url::Url,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let git_dir = local_repository(repository).unwrap_or_else(|| self.mirror_path(repository));
        let objects: Vec<(String, String)> = paths
            .iter()
            .map(|path| (path.clone(), format!("{commit}:{path}")))
            .collect();
        Ok(self.read_blobs(&git_dir, &objects).await?.0)
    }

    fn mirror_path(&self, repository: &url::Url) -> PathBuf {
        let digest = hex::encode(Sha1::digest(repository.as_str().as_bytes()));
        self.settings
            .cache_dir
            .join("git")
            .join(format!("{digest}.git"))
    }

    async fn fetch(&self, repository: &url::Url, mirror: &Path) -> Result<(), String> {
        if !mirror.join("HEAD").exists() {
            tokio::fs::create_dir_all(mirror)
                .await
                .map_err(|e| format!("cannot create {}: {e}", mirror.display()))?;
            self.git(mirror, &["init", "--quiet", "--bare"]).await?;
        }
        // Every branch and tag, forced: the mirror follows the repository, rewrites included.
        self.git(
            mirror,
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--no-tags",
                // Housekeeping runs after the read, not inside it (see below).
                "--no-auto-gc",
                "--end-of-options",
                repository.as_str(),
                "+HEAD:refs/remotes/origin/HEAD",
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )
        .await
        .map_err(|e| format!("cannot fetch {repository}: {e}"))?;
        // `HEAD` of the mirror follows the repository's.
        let _ = self
            .git(mirror, &["update-ref", "HEAD", "refs/remotes/origin/HEAD"])
            .await;
        // Each fetch adds a pack; git repacks once they pile up. Done in the background so a
        // push's harvest never waits for it (git's lock keeps two from running at once).
        let mut housekeeping = self.command(mirror);
        housekeeping
            .args(["gc", "--auto", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(false);
        if let Ok(mut child) = housekeeping.spawn() {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Ok(())
    }

    /// Reads `(path, object)` pairs with one `git cat-file --batch`.
    async fn read_blobs(
        &self,
        git_dir: &Path,
        paths: &[(String, String)],
    ) -> Result<(Vec<(String, Vec<u8>)>, Vec<(String, u64)>), String> {
        if paths.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut child = self
            .command(git_dir)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("git cat-file has no stdin")?;
        let requests: String = paths
            .iter()
            .map(|(_, object)| format!("{object}\n"))
            .collect();
        // Written from a task so a large request list cannot deadlock against the output.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(requests.as_bytes()).await;
            drop(stdin);
        });
        let stdout = child.stdout.take().ok_or("git cat-file has no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut files = Vec::with_capacity(paths.len());
        let mut too_large = Vec::new();
        let limit = self.settings.max_file_bytes;
        let work = async {
            for (path, _) in paths {
                let mut header = String::new();
                reader
                    .read_line(&mut header)
                    .await
                    .map_err(|e| format!("git cat-file: {e}"))?;
                let parts: Vec<&str> = header.split_whitespace().collect();
                if parts.get(1) == Some(&"missing") || parts.len() < 3 {
                    continue;
                }
                let size: u64 = parts[2]
                    .parse()
                    .map_err(|_| format!("git cat-file: {header:?}"))?;
                let mut content = vec![0; usize::try_from(size).map_err(|_| "blob too large")?];
                reader
                    .read_exact(&mut content)
                    .await
                    .map_err(|e| format!("git cat-file: {e}"))?;
                let mut newline = [0u8; 1];
                reader
                    .read_exact(&mut newline)
                    .await
                    .map_err(|e| format!("git cat-file: {e}"))?;
                if parts[1] != "blob" {
                    continue;
                }
                if size > limit {
                    too_large.push((path.clone(), size));
                } else {
                    files.push((path.clone(), content));
                }
            }
            Ok::<_, String>(())
        };
        tokio::time::timeout(self.settings.timeout, work)
            .await
            .map_err(|_| format!("reading files timed out after {:?}", self.settings.timeout))??;
        let _ = writer.await;
        let _ = child.wait().await;
        Ok((files, too_large))
    }

    /// git in `git_dir` (a mirror, or a local repository's git folder).
    fn command(&self, git_dir: &Path) -> Command {
        // A linked work tree's or a submodule's `.git` is a file naming the real folder:
        // git follows it from `GIT_DIR`, but cannot run inside it.
        let cwd = match git_dir.parent() {
            Some(parent) if git_dir.is_file() => parent,
            _ => git_dir,
        };
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("GIT_SSH_COMMAND", "false")
            // Named, not discovered: a path that is not a repository must not resolve to a
            // repository above it.
            .env("GIT_DIR", git_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let config = {
            let mut config = vec![("protocol.file.allow", "always".to_owned())];
            if let Some(authorization) = self.authorization {
                config.push((
                    "http.extraHeader",
                    format!("Authorization: {authorization}"),
                ));
            }
            config
        };
        if let Some(bundle) = self.ca_bundle {
            // (git 2.39 with GnuTLS ignores `http.sslCAInfo` from `-c`/GIT_CONFIG_*; the
            // environment variable works.)
            command.env("GIT_SSL_CAINFO", bundle);
        }
        command.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (index, (key, value)) in config.into_iter().enumerate() {
            command
                .env(format!("GIT_CONFIG_KEY_{index}"), key)
                .env(format!("GIT_CONFIG_VALUE_{index}"), value);
        }
        command
    }

    /// Runs git in `git_dir` with the harvest timeout; its output, or why it failed.
    async fn git(&self, git_dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
        let run = self
            .command(git_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        let output = tokio::time::timeout(self.settings.timeout, run)
            .await
            .map_err(|_| {
                format!(
                    "git {} timed out after {:?}",
                    args[0], self.settings.timeout
                )
            })?
            .map_err(|e| format!("cannot run git: {e}"))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(first_line(&stderr).to_owned())
        }
    }
}

/// The git folder of a `file://` repository (`<path>/.git` or a bare `<path>`), read in
/// place instead of through a mirror.
fn local_repository(repository: &url::Url) -> Option<PathBuf> {
    let path = (repository.scheme() == "file")
        .then(|| repository.to_file_path().ok())
        .flatten()?;
    let work_tree_git = path.join(".git");
    Some(if work_tree_git.exists() {
        work_tree_git
    } else {
        path
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("git failed")
}

/// Git reads that take longer than this are reported as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
