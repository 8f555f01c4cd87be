//! A deterministic synthetic organisation of realistic shape: domains, systems, groups in a
//! hierarchy, users with memberships, components of several types, APIs, resources; owners,
//! systems, provided and consumed APIs and dependencies that refer to real entities, with a
//! few popular APIs consumed by many and a long tail.
//!
//! Same seed and size, same organisation. Entities come out as YAML-free JSON bodies that the
//! entity model accepts; [`Organisation::entity`] yields them one at a time, so a million
//! never sit in memory at once.

use serde_json::{Value, json};

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Skewed towards 0: a few items get most picks (popular APIs, big teams).
    pub fn skewed(&mut self, n: usize) -> usize {
        let uniform = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((uniform * uniform * uniform) * n as f64) as usize % n.max(1)
    }
}

/// How many of each kind an organisation of `size` entities holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub domains: usize,
    pub systems: usize,
    pub groups: usize,
    pub users: usize,
    pub apis: usize,
    pub resources: usize,
    pub components: usize,
}

impl Shape {
    pub fn for_size(size: usize) -> Self {
        let domains = (size / 2_000).max(1);
        let systems = (size / 100).max(1);
        let groups = (size / 50).max(1);
        let users = size / 10;
        let apis = size / 10;
        let resources = size / 10;
        let used = domains + systems + groups + users + apis + resources;
        Shape {
            domains,
            systems,
            groups,
            users,
            apis,
            resources,
            components: size.saturating_sub(used),
        }
    }

    pub fn total(&self) -> usize {
        self.domains
            + self.systems
            + self.groups
            + self.users
            + self.apis
            + self.resources
            + self.components
    }
}

/// A synthetic organisation.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub seed: u64,
    pub shape: Shape,
}

const TYPES: &[&str] = &[
    "service", "service", "service", "website", "library", "library",
];
const LIFECYCLES: &[&str] = &[
    "production",
    "production",
    "production",
    "experimental",
    "deprecated",
];
const TAGS: &[&str] = &[
    "java",
    "rust",
    "go",
    "python",
    "typescript",
    "kafka",
    "postgres",
    "grpc",
    "graphql",
    "payments",
    "search",
    "ml",
    "edge",
    "internal",
];
const WORDS: &[&str] = &[
    "payment",
    "gateway",
    "ledger",
    "catalog",
    "search",
    "billing",
    "checkout",
    "identity",
    "inventory",
    "shipping",
    "pricing",
    "review",
    "media",
    "playback",
    "artist",
    "podcast",
    "notification",
    "analytics",
    "fraud",
    "session",
];

/// Words of titles and descriptions, drawn as words of real text are: by Zipf's law over a
/// vocabulary of [`VOCABULARY_SIZE`], so a few words are in most texts and most words in few.
/// The domain words of [`WORDS`] sit among the common ones (ranks 5, 10, … 100). A flat pick
/// from a handful of words would put every word in nearly every description, which no real
/// catalog does and which makes every text search match everything.
pub const VOCABULARY_SIZE: usize = 4_000;

struct Vocabulary {
    words: Vec<String>,
    /// Cumulative weights, 1/rank, for picking by rank.
    cumulative: Vec<f64>,
}

static VOCABULARY: std::sync::LazyLock<Vocabulary> = std::sync::LazyLock::new(Vocabulary::new);

impl Vocabulary {
    fn new() -> Vocabulary {
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "mi", "ser", "van", "tor", "bel", "ri", "don", "fa", "gen", "hul", "is",
            "jor", "ket", "lun", "mar", "nex", "ob", "pra", "quin", "ros", "sul", "tav", "ur",
            "vel", "wen", "xan", "yor", "zel",
        ];
        let mut rng = Rng::new(0x005E_ED0F_70C5);
        let mut words: Vec<String> = Vec::with_capacity(VOCABULARY_SIZE);
        let mut seen = std::collections::HashSet::new();
        while words.len() < VOCABULARY_SIZE {
            let rank = words.len() + 1;
            if rank.is_multiple_of(5) && rank / 5 <= WORDS.len() {
                words.push(WORDS[rank / 5 - 1].to_owned());
                continue;
            }
            let syllables = 2 + rng.below(2);
            let word: String = (0..syllables)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect();
            if !WORDS.contains(&word.as_str()) && seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY_SIZE)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let total = self.cumulative[self.cumulative.len() - 1];
        let target = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let rank = self.cumulative.partition_point(|&c| c < target);
        &self.words[rank.min(self.words.len() - 1)]
    }
}

impl Organisation {
    pub fn new(seed: u64, size: usize) -> Self {
        Organisation {
            seed,
            shape: Shape::for_size(size),
        }
    }

    pub fn len(&self) -> usize {
        self.shape.total()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `index`-th entity (0-based): the same body for the same seed, size and index.
    pub fn entity(&self, index: usize) -> Value {
        let mut rng = Rng::new(self.seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let s = &self.shape;
        let mut i = index;
        if i < s.domains {
            return self.domain(i, &mut rng);
        }
        i -= s.domains;
        if i < s.systems {
            return self.system(i, &mut rng);
        }
        i -= s.systems;
        if i < s.groups {
            return self.group(i, &mut rng);
        }
        i -= s.groups;
        if i < s.users {
            return self.user(i, &mut rng);
        }
        i -= s.users;
        if i < s.apis {
            return self.api(i, &mut rng);
        }
        i -= s.apis;
        if i < s.resources {
            return self.resource(i, &mut rng);
        }
        i -= s.resources;
        self.component(i, &mut rng)
    }

    /// The ref of the `index`-th entity (cheap; no body built).
    pub fn entity_ref(&self, index: usize) -> String {
        let body = self.entity(index);
        format!(
            "{}:default/{}",
            body["kind"].as_str().unwrap_or_default().to_lowercase(),
            body["metadata"]["name"].as_str().unwrap_or_default()
        )
    }

    fn words(rng: &mut Rng, n: usize) -> String {
        (0..n)
            .map(|_| VOCABULARY.pick(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn description(rng: &mut Rng) -> String {
        let sentences: Vec<String> = (0..6)
            .map(|_| {
                let mut sentence = Self::words(rng, 12);
                sentence.push('.');
                sentence
            })
            .collect();
        sentences.join(" ")
    }

    fn tags(rng: &mut Rng) -> Vec<&'static str> {
        let mut tags: Vec<&str> = (0..1 + rng.below(4))
            .map(|_| TAGS[rng.skewed(TAGS.len())])
            .collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    fn group_name(&self, i: usize) -> String {
        format!("team-{i:05}")
    }

    fn owner(&self, rng: &mut Rng) -> String {
        self.group_name(rng.skewed(self.shape.groups))
    }

    fn system_name(&self, i: usize) -> String {
        format!("system-{i:05}")
    }

    fn api_name(&self, i: usize) -> String {
        format!("api-{i:06}")
    }

    fn metadata(&self, name: String, rng: &mut Rng) -> Value {
        let slug = name.clone();
        json!({
            "name": name,
            "title": Self::words(rng, 3),
            "description": Self::description(rng),
            "tags": Self::tags(rng),
            "labels": {"tier": format!("tier-{}", 1 + rng.below(3))},
            "annotations": {
                "github.com/project-slug": format!("acme/{slug}"),
                "backstage.io/techdocs-ref": "dir:.",
                "pagerduty.com/service-id": format!("P{:06}", rng.below(1_000_000)),
            },
            "links": [{"url": format!("https://dashboards.example.com/{slug}"), "title": "Dashboard", "icon": "dashboard"}]
        })
    }

    fn domain(&self, i: usize, rng: &mut Rng) -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Domain",
            "metadata": self.metadata(format!("domain-{i:04}"), rng),
            "spec": {"owner": self.owner(rng)}
        })
    }

    fn system(&self, i: usize, rng: &mut Rng) -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "System",
            "metadata": self.metadata(self.system_name(i), rng),
            "spec": {"owner": self.owner(rng), "domain": format!("domain-{:04}", rng.below(self.shape.domains))}
        })
    }

    fn group(&self, i: usize, rng: &mut Rng) -> Value {
        let mut spec = json!({"type": "team", "children": []});
        if i > 0 {
            // A hierarchy: every group but the root has a parent with a lower index.
            spec["parent"] = Value::String(self.group_name(rng.below(i)));
        }
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
            "metadata": self.metadata(self.group_name(i), rng),
            "spec": spec
        })
    }

    fn user(&self, i: usize, rng: &mut Rng) -> Value {
        let groups: Vec<String> = (0..1 + rng.below(2))
            .map(|_| self.group_name(rng.below(self.shape.groups)))
            .collect();
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "User",
            "metadata": {"name": format!("user-{i:06}")},
            "spec": {"profile": {"displayName": format!("User {i}"), "email": format!("user-{i}@example.com")}, "memberOf": groups}
        })
    }

    fn api(&self, i: usize, rng: &mut Rng) -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "API",
            "metadata": self.metadata(self.api_name(i), rng),
            "spec": {
                "type": if rng.below(4) == 0 { "grpc" } else { "openapi" },
                "lifecycle": LIFECYCLES[rng.below(LIFECYCLES.len())],
                "owner": self.owner(rng),
                "system": self.system_name(rng.below(self.shape.systems)),
                "definition": format!("openapi: 3.0.0\ninfo:\n  title: {}\n  version: 1.0.0\npaths: {{}}\n", self.api_name(i))
            }
        })
    }

    fn resource(&self, i: usize, rng: &mut Rng) -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Resource",
            "metadata": self.metadata(format!("resource-{i:06}"), rng),
            "spec": {"type": if rng.below(2) == 0 { "database" } else { "queue" }, "owner": self.owner(rng), "system": self.system_name(rng.below(self.shape.systems))}
        })
    }

    fn component(&self, i: usize, rng: &mut Rng) -> Value {
        let s = &self.shape;
        let provides: Vec<String> = if s.apis > 0 && rng.below(3) == 0 {
            vec![self.api_name(rng.below(s.apis))]
        } else {
            vec![]
        };
        let consumes: Vec<String> = if s.apis > 0 {
            (0..rng.below(4))
                .map(|_| self.api_name(rng.skewed(s.apis)))
                .collect()
        } else {
            vec![]
        };
        let depends: Vec<String> = if s.resources > 0 {
            (0..rng.below(3))
                .map(|_| format!("resource:resource-{:06}", rng.below(s.resources)))
                .collect()
        } else {
            vec![]
        };
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": self.metadata(format!("component-{i:07}"), rng),
            "spec": {
                "type": TYPES[rng.below(TYPES.len())],
                "lifecycle": LIFECYCLES[rng.below(LIFECYCLES.len())],
                "owner": self.owner(rng),
                "system": self.system_name(rng.below(s.systems)),
                "providesApis": provides,
                "consumesApis": consumes,
                "dependsOn": depends
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadastre_model::Validator;

    #[test]
    fn is_deterministic_valid_and_shaped() {
        let org = Organisation::new(7, 2_000);
        assert_eq!(org.len(), 2_000);
        assert_eq!(org.entity(1234), Organisation::new(7, 2_000).entity(1234));
        assert_ne!(org.entity(1234), Organisation::new(8, 2_000).entity(1234));
        let validator = Validator::default();
        let mut kinds = std::collections::BTreeMap::new();
        for index in 0..org.len() {
            let body = org.entity(index);
            let valid = validator
                .validate(body, None)
                .unwrap_or_else(|e| panic!("entity {index}: {e:?}"));
            *kinds.entry(valid.entity.kind.clone()).or_insert(0) += 1;
        }
        assert_eq!(kinds["Component"], org.shape.components);
        assert!(kinds["Component"] > 1_000);
        let size = serde_json::to_string(&org.entity(org.len() - 1))
            .unwrap()
            .len();
        assert!(
            (700..2_000).contains(&size),
            "a component is about 1 KiB: {size}"
        );
    }

    #[test]
    fn text_follows_zipf_over_a_large_vocabulary() {
        let vocabulary = &*VOCABULARY;
        assert_eq!(vocabulary.words.len(), VOCABULARY_SIZE);
        assert_eq!(vocabulary.words[4], WORDS[0]);
        let mut rng = Rng::new(1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            *counts.entry(vocabulary.pick(&mut rng)).or_insert(0u32) += 1;
        }
        // Rank 1 about twice rank 2 and ten times rank 10; most of the vocabulary seen.
        let count = |rank: usize| {
            counts
                .get(vocabulary.words[rank - 1].as_str())
                .copied()
                .unwrap_or(0)
        };
        assert!((1.6..2.5).contains(&(f64::from(count(1)) / f64::from(count(2)))));
        assert!((7.0..14.0).contains(&(f64::from(count(1)) / f64::from(count(10)))));
        assert!(counts.len() > 3_000, "{} words seen", counts.len());
    }
}
