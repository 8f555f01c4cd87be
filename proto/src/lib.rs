//! Cadastre's wire contracts.
//!
//! This crate holds every gRPC service and bus message of Cadastre, all in
//! the protobuf package `cadastre.v1`. The `.proto` sources live next to this
//! crate in `cadastre/v1/` and are compiled at build time by
//! [protox](https://docs.rs/protox), a pure-Rust protobuf compiler, so no
//! system `protoc` is needed. The generated prost messages and tonic clients
//! and servers are in [`v1`].
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of all these files,
//! for registering gRPC server reflection.

pub mod serve;
pub mod transport;

/// Messages and services of the protobuf package `cadastre.v1`.
pub mod v1 {
    tonic::include_proto!("cadastre.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file in
/// this crate, including source info (comments), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cadastre_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::FILE_DESCRIPTOR_SET;
    use super::v1::{Entity, Finding, Position, Relation, Severity};

    #[test]
    fn finding_round_trips() {
        let finding = Finding {
            rule: "name-format".to_owned(),
            severity: Severity::Warning.into(),
            path: "spec.owner".to_owned(),
            message: "owner must be an entity reference".to_owned(),
            position: Some(Position {
                line: 12,
                column: 5,
            }),
            file: "catalog-info.yaml".to_owned(),
        };

        let decoded = Finding::decode(finding.encode_to_vec().as_slice()).unwrap();

        assert_eq!(decoded, finding);
        assert_eq!(decoded.severity(), Severity::Warning);
    }

    #[test]
    fn finding_without_position_round_trips() {
        let finding = Finding {
            rule: "yaml-syntax".to_owned(),
            severity: Severity::Error.into(),
            message: "unexpected end of stream".to_owned(),
            file: "catalog-info.yaml".to_owned(),
            ..Finding::default()
        };

        let decoded = Finding::decode(finding.encode_to_vec().as_slice()).unwrap();

        assert_eq!(decoded, finding);
        assert_eq!(decoded.position, None);
    }

    #[test]
    fn entity_round_trips() {
        let entity = Entity {
            entity_ref: "component:default/payments".to_owned(),
            uid: "0b0e6f3c-5d7a-4f1e-9a53-1f1a2b3c4d5e".to_owned(),
            etag: "3f2a9c".to_owned(),
            kind: "Component".to_owned(),
            namespace: "default".to_owned(),
            name: "payments".to_owned(),
            body_json: br#"{"apiVersion":"backstage.io/v1alpha1","kind":"Component"}"#.to_vec(),
            relations: vec![
                Relation {
                    r#type: "ownedBy".to_owned(),
                    target_ref: "group:default/team-a".to_owned(),
                },
                Relation {
                    r#type: "dependsOn".to_owned(),
                    target_ref: "resource:default/payments-db".to_owned(),
                },
            ],
        };

        let decoded = Entity::decode(entity.encode_to_vec().as_slice()).unwrap();

        assert_eq!(decoded, entity);
    }

    #[test]
    fn descriptor_set_describes_the_package() {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();

        let ours: Vec<_> = fds
            .file
            .iter()
            .filter(|file| file.package() == "cadastre.v1")
            .collect();
        let names: Vec<_> = ours.iter().map(|file| file.name()).collect();
        assert!(names.contains(&"cadastre/v1/entity.proto"), "{names:?}");
        assert!(names.contains(&"cadastre/v1/validation.proto"), "{names:?}");

        let messages: Vec<_> = ours
            .iter()
            .flat_map(|file| &file.message_type)
            .map(|message| message.name())
            .collect();
        for expected in ["Entity", "Finding", "ValidateRequest", "ValidateResponse"] {
            assert!(
                messages.contains(&expected),
                "{expected} missing from {messages:?}"
            );
        }
    }
}
