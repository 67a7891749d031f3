//! Label selector matching, with the semantics of `metav1.LabelSelector`.

use super::observed::Labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` selects an object with `labels`. An empty selector selects everything;
/// an unknown operator selects nothing (the safe answer for a selector molt cannot read).
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether an optional selector selects `labels`; `None` selects everything.
pub fn matches_opt(selector: Option<&LabelSelector>, labels: &Labels) -> bool {
    selector.is_none_or(|s| matches(s, labels))
}

/// A selector with no terms (it would select every object).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_must_all_match() {
        let s = LabelSelector {
            match_labels: Some(l(&[("pool", "a"), ("zone", "1")])),
            ..Default::default()
        };
        assert!(matches(&s, &l(&[("pool", "a"), ("zone", "1"), ("x", "y")])));
        assert!(!matches(&s, &l(&[("pool", "a")])));
        assert!(!matches(&s, &l(&[("pool", "b"), ("zone", "1")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let s = LabelSelector {
            match_expressions: Some(vec![
                expr("pool", "In", &["a", "b"]),
                expr("gpu", "DoesNotExist", &[]),
                expr("tier", "NotIn", &["system"]),
            ]),
            ..Default::default()
        };
        assert!(matches(&s, &l(&[("pool", "b")])));
        assert!(matches(&s, &l(&[("pool", "a"), ("tier", "web")])));
        assert!(!matches(&s, &l(&[("pool", "c")])));
        assert!(!matches(&s, &l(&[("pool", "a"), ("gpu", "1")])));
        assert!(!matches(&s, &l(&[("pool", "a"), ("tier", "system")])));
        let unknown = LabelSelector {
            match_expressions: Some(vec![expr("pool", "Like", &["a"])]),
            ..Default::default()
        };
        assert!(!matches(&unknown, &l(&[("pool", "a")])));
    }

    #[test]
    fn empty_selects_everything_and_is_reported_empty() {
        let s = LabelSelector::default();
        assert!(matches(&s, &l(&[("a", "b")])));
        assert!(is_empty(&s));
        assert!(matches_opt(None, &l(&[])));
        let s = LabelSelector {
            match_labels: Some(l(&[("a", "b")])),
            ..Default::default()
        };
        assert!(!is_empty(&s));
    }
}
