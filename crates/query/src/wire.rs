//! Predicates on the wire: the `cadastre.v1.Predicate` form `CatalogService` takes.

use cadastre_proto::v1 as pb;

use crate::predicate::{Condition, Predicate};

/// The proto form of a predicate, for clients of `CatalogService`.
pub fn to_proto(predicate: &Predicate) -> pb::Predicate {
    use pb::field_condition::Condition as PbCondition;
    use pb::predicate::Kind;
    let kind = match predicate {
        Predicate::All(items) => Kind::All(pb::PredicateList {
            items: items.iter().map(to_proto).collect(),
        }),
        Predicate::Any(items) => Kind::Any(pb::PredicateList {
            items: items.iter().map(to_proto).collect(),
        }),
        Predicate::Not(inner) => Kind::Not(Box::new(to_proto(inner))),
        Predicate::Field { key, condition } => Kind::Field(pb::FieldCondition {
            key: key.clone(),
            condition: Some(match condition {
                Condition::Exists(exists) => PbCondition::Exists(*exists),
                Condition::In(values) => PbCondition::In(pb::StringList {
                    values: values.clone(),
                }),
                Condition::HasPrefix(prefix) => PbCondition::HasPrefix(prefix.clone()),
                Condition::Relation {
                    relation_type,
                    targets,
                } => PbCondition::Relation(pb::RelationCondition {
                    relation_type: relation_type.clone(),
                    targets: targets.clone(),
                }),
            }),
        }),
    };
    pb::Predicate { kind: Some(kind) }
}
