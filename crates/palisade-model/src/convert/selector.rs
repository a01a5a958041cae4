//! `metav1.LabelSelector` and label maps, validated as `ValidateLabelSelector` and
//! `ValidateLabels` do.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::names;
use crate::field_path::{At, Errors};
use crate::selector::{Labels, Operator, Requirement, Selector};

/// Validates a label map (metadata.labels, matchLabels, Service selector).
pub fn labels(map: Option<&BTreeMap<String, String>>, path: &At<'_>, errors: &mut Errors) -> Labels {
    let Some(map) = map else { return Labels::new() };
    for (key, value) in map {
        errors.check(path, "label key", key, names::qualified_name(key));
        errors.check(&path.key(key), "label value", value, names::label_value(value));
    }
    map.clone()
}

pub fn selector(selector: &LabelSelector, path: &At<'_>, errors: &mut Errors) -> Selector {
    let mut requirements = Vec::new();
    let match_labels = labels(selector.match_labels.as_ref(), &path.key("matchLabels"), errors);
    for (key, value) in match_labels {
        requirements.push(Requirement { key, operator: Operator::In(BTreeSet::from([value])) });
    }
    let expressions_path = path.key("matchExpressions");
    for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
        let path = expressions_path.index(i);
        errors.check(&path.key("key"), "label key", &expression.key, names::qualified_name(&expression.key));
        let values = expression.values.clone().unwrap_or_default();
        let values_path = path.key("values");
        for (j, value) in values.iter().enumerate() {
            errors.check(&values_path.index(j), "label value", value, names::label_value(value));
        }
        let operator = match expression.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errors.push(path.key("values"), "must be specified when `operator` is 'In' or 'NotIn'");
                continue;
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errors.push(path.key("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
                continue;
            }
            "In" => Operator::In(values.into_iter().collect()),
            "NotIn" => Operator::NotIn(values.into_iter().collect()),
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                errors.push(path.key("operator"), format!("unsupported operator {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""));
                continue;
            }
        };
        requirements.push(Requirement { key: expression.key.clone(), operator });
    }
    Selector::new(requirements)
}
