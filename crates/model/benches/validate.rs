//! Entities read and validated per second, on one core, from YAML bytes.
//!
//! The document is a realistic ~1 KiB catalog-info.yaml (a Component with description,
//! annotations, tags, labels, links and a spec with relations). Groups:
//!
//! - `read_and_validate_1kib`: the whole per-file pipeline ([`CatalogReader::read`]: YAML,
//!   placeholder resolution with a reader that fails every read, validation, relations), for
//!   one document and for a file of 100 such documents;
//! - `parse_only`: [`yaml::parse_bytes`] alone;
//! - `validate_only`: [`Validator::validate`] on a pre-parsed value (cloned outside the timed
//!   part) with its source map.
//!
//! Run with `cargo bench -p cadastre-model --bench validate`; criterion reports elements/s.

use std::hint::black_box;
use std::time::Duration;

use cadastre_model::yaml::{self, Limits};
use cadastre_model::{CatalogReader, PlaceholderReader, ReadOutcome, Validator};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const LOCATION: &str = "/repo/services/artist-web/catalog-info.yaml";

/// A realistic catalog-info.yaml of about 1 KiB.
const CATALOG_INFO: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: artist-web
  namespace: music
  title: Artist Web
  description: >-
    The place to be for great artists: public artist pages, search and
    recommendations, served from the edge.
  labels:
    tier: frontend
    example.com/cost-center: cc-1234
  annotations:
    github.com/project-slug: acme/artist-web
    backstage.io/techdocs-ref: dir:.
    pagerduty.com/service-id: PX12345
    pagerduty.com/integration-key: 0123456789abcdef0123456789abcdef
  tags:
    - java
    - web
    - data-pipeline
    - music
  links:
    - url: https://dashboard.example.com/d/artist-web
      title: Grafana dashboard
      icon: dashboard
    - url: https://runbooks.example.com/artist-web
      title: On-call runbook
      icon: help
spec:
  type: website
  lifecycle: production
  owner: group:music/artist-relations
  system: public-websites
  providesApis:
    - artist-api
  consumesApis:
    - api:default/search-api
    - playlist-api
  dependsOn:
    - resource:default/artists-db
    - component:music/artist-lookup
"#;

/// Every placeholder read fails (the document has none; resolution still walks it).
struct NoFiles;

impl PlaceholderReader for NoFiles {
    fn read(&self, _target: &str) -> Result<ReadOutcome, String> {
        Err("no files in benchmarks".to_owned())
    }
}

/// `count` copies of the document in one file, each with its own name.
fn many_documents(count: usize) -> String {
    (0..count)
        .map(|i| {
            let document =
                CATALOG_INFO.replacen("name: artist-web\n", &format!("name: artist-web-{i}\n"), 1);
            format!("---\n{document}")
        })
        .collect()
}

/// Checks the fixtures once, outside any timed loop.
fn check_fixtures(reader: &CatalogReader<'_>, single: &[u8], many: &[u8], count: usize) {
    assert!(
        (900..=1200).contains(&single.len()),
        "the fixture should be ~1 KiB, it is {} bytes",
        single.len()
    );
    let report = reader.read(LOCATION, single);
    assert_eq!(report.error_count(), 0, "{report:#?}");
    assert_eq!(report.warning_count(), 0, "{report:#?}");
    assert_eq!(report.valid_entities().count(), 1);
    let relations = report
        .valid_entities()
        .map(|valid| valid.entity.relations.len())
        .sum::<usize>();
    // ownedBy, partOf, providesApi, 2 consumesApi, 2 dependsOn.
    assert_eq!(relations, 7);

    let report = reader.read(LOCATION, many);
    assert_eq!(
        report.error_count(),
        0,
        "{:#?}",
        report.all_findings().next()
    );
    assert_eq!(report.valid_entities().count(), count);
}

fn benchmarks(c: &mut Criterion) {
    const MANY: usize = 100;
    let validator = Validator::default();
    let limits = Limits::default();
    let reader = CatalogReader {
        validator: &validator,
        limits,
        placeholders: &NoFiles,
    };
    let single = CATALOG_INFO.as_bytes();
    let many_text = many_documents(MANY);
    let many = many_text.as_bytes();
    check_fixtures(&reader, single, many, MANY);

    let mut group = c.benchmark_group("read_and_validate_1kib");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_document", |b| {
        b.iter(|| reader.read(black_box(LOCATION), black_box(single)));
    });
    group.throughput(Throughput::Elements(MANY as u64));
    group.bench_function("100_documents_one_file", |b| {
        b.iter(|| reader.read(black_box(LOCATION), black_box(many)));
    });
    group.finish();

    let mut group = c.benchmark_group("parse_only");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_document", |b| {
        b.iter(|| yaml::parse_bytes(black_box(single), &limits));
    });
    group.finish();

    let parsed = yaml::parse_bytes(single, &limits);
    assert!(parsed.findings.is_empty(), "{:?}", parsed.findings);
    let document = parsed.documents.into_iter().next().expect("one document");
    assert!(
        validator
            .validate(document.value.clone(), Some(&document.source))
            .is_ok()
    );
    let mut group = c.benchmark_group("validate_only");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_document", |b| {
        b.iter_batched(
            || document.value.clone(),
            |value| validator.validate(value, Some(black_box(&document.source))),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    targets = benchmarks
}
criterion_main!(benches);
