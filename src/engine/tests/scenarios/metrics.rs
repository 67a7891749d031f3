//! Metrics analysis during the soak: the failure limit, error streaks and inconclusive answers
//! (the plan waits, then resumes), the `{{nodes}}` placeholder, counting each measurement once
//! across restarts, and a soak that needs a successful measurement to pass.

use super::*;
use crate::api::BatchPhase;
use crate::api::analysis::MeasurementPhase;
use crate::api::condition::reasons;
use crate::engine::analysis::{self, Measurement};

const QUERY: &str = r#"sum(rate(errors_total{node=~"{{nodes}}"}[1m]))"#;

/// A plan with a 60 s soak and one metric, `error-rate`, failing above 0.05.
fn metrics_plan(failure_limit: i32, error_limit: i32) -> NodeUpdatePlan {
    plan_yaml(&format!(
        r#"  health: {{soak: 60s}}
  analysis:
    prometheus: {{address: "http://prometheus:9090"}}
    metrics:
    - name: error-rate
      query: '{QUERY}'
      failureCondition: {{operator: ">", value: 0.05}}
      interval: 30s
      failureLimit: {failure_limit}
      consecutiveErrorLimit: {error_limit}
"#
    ))
}

/// Soaking with a healthy gate (the replacement pod Ready), no measurement yet.
fn soaking_healthy(plan: NodeUpdatePlan) -> (World, Timestamp) {
    let (mut w, drained) = soaking(plan);
    w.pod_mut("web-1").ready = true;
    (w, drained)
}

/// Decide with one measurement of `error-rate` taken now (as the shell hands it over).
fn measured(w: &mut World, result: Result<Vec<f64>, String>) -> Decision {
    w.obs.measurements = vec![Measurement {
        batch: 0,
        metric: "error-rate".into(),
        at: w.now,
        result,
    }];
    let d = w.step();
    w.obs.measurements.clear();
    d
}

fn progressing(w: &World) -> &Condition {
    cond(w.status(), types::PROGRESSING)
}

#[test]
fn the_query_names_the_batchs_new_nodes_and_is_due_once_per_interval() {
    let (mut w, _) = soaking_healthy(metrics_plan(0, 4));
    let due = analysis::due(&w.plan, w.now);
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].query,
        format!(
            r#"sum(rate(errors_total{{node=~"^(?:{})$"}}[1m]))"#,
            new_name(0, 0, 0)
        )
    );
    measured(&mut w, Ok(vec![0.0]));
    w.tick(29);
    assert_eq!(
        analysis::due(&w.plan, w.now),
        vec![],
        "not due before the interval"
    );
    w.tick(1);
    assert_eq!(
        analysis::due(&w.plan, w.now).len(),
        1,
        "due again after 30s"
    );
    // Dots are escaped for the regex, and the backslash for the PromQL string.
    assert_eq!(
        analysis::expand(r#"up{node=~"{{nodes}}"}"#, &["a.b".into(), "c".into()]),
        r#"up{node=~"^(?:a\\.b|c)$"}"#
    );
}

#[test]
fn the_soak_passes_only_after_a_successful_measurement() {
    let (mut w, drained) = soaking_healthy(metrics_plan(0, 4));
    let d = w.step();
    assert!(
        d.requeue_after.is_some_and(|r| r.as_secs() <= 1),
        "the first measurement is due at once: {:?}",
        d.requeue_after
    );
    w.tick(61);
    let d = w.step();
    assert_eq!(
        events(&d),
        Vec::<&str>::new(),
        "no pass without a measurement"
    );
    assert_eq!(w.batch(0).phase, BatchPhase::Soaking);
    assert!(
        progressing(&w)
            .message
            .contains("metric error-rate: first measurement due"),
        "{}",
        progressing(&w).message
    );
    let d = measured(&mut w, Ok(vec![0.01]));
    assert_eq!(
        events(&d),
        [
            reasons::HEALTH_GATE_PASSED,
            reasons::BATCH_COMPLETED,
            reasons::POINT_OF_NO_RETURN
        ]
    );
    assert!(w.now > at(drained, 60));
    let m = &w.batch(0).analysis[0];
    assert_eq!((m.phase, m.successful), (MeasurementPhase::Successful, 1));
    assert_eq!(m.last_value.as_deref(), Some("0.01"));
}

#[test]
fn more_failures_than_the_failure_limit_roll_back_naming_the_metric() {
    let (mut w, _) = soaking_healthy(metrics_plan(1, 4));
    let d = measured(&mut w, Ok(vec![0.2]));
    assert_eq!(
        events(&d),
        Vec::<&str>::new(),
        "one failure is within failureLimit 1"
    );
    assert_eq!(w.phase(), Phase::Progressing);
    assert_eq!(w.batch(0).analysis[0].failed, 1);

    w.tick(30);
    let d = measured(&mut w, Ok(vec![0.01, 0.3]));
    assert_eq!(w.phase(), Phase::RollingBack, "{:?}", w.status().message);
    assert_eq!(
        events(&d),
        [reasons::METRIC_FAILED, reasons::ROLLBACK_STARTED]
    );
    let f = w.status().failure.clone().unwrap();
    assert_eq!(
        (f.reason.as_str(), f.batch),
        (reasons::METRIC_FAILED, Some(0))
    );
    assert_eq!(
        f.message,
        "metric error-rate failed in batch 1/1: value 0.3 meets the failure condition > 0.05 \
         (2 failed measurement(s), failureLimit 1)"
    );
    assert!(
        acts(&d).contains(&"Uncordon old-0".to_string()),
        "{:?}",
        acts(&d)
    );
}

#[test]
fn errors_beyond_the_limit_make_the_plan_wait_and_it_resumes_when_measurements_succeed() {
    let (mut w, _) = soaking_healthy(metrics_plan(0, 2));
    let refused = "cannot query http://prometheus:9090/api/v1/query: connection refused";
    for _ in 0..2 {
        measured(&mut w, Err(refused.into()));
        assert_eq!(progressing(&w).reason, reasons::SOAKING, "within the limit");
        w.tick(30);
    }
    let d = measured(&mut w, Err(refused.into()));
    assert_eq!(events(&d), Vec::<&str>::new());
    assert_eq!(
        w.phase(),
        Phase::Progressing,
        "an unreachable metric never rolls back"
    );
    let c = progressing(&w);
    assert_eq!(c.reason, reasons::METRIC_INCONCLUSIVE);
    assert_eq!(
        c.message,
        format!(
            "batch 1/1: waiting, neither passing nor rolling back: metric error-rate cannot be \
             measured: 3 errors in a row (consecutiveErrorLimit 2); last: {refused}"
        )
    );
    assert_eq!(
        w.batch(0).soak_started_at,
        None,
        "the soak starts again afterwards"
    );
    assert_eq!(w.batch(0).analysis[0].consecutive_errors, 3);

    // Long past the soak, still waiting.
    w.tick(120);
    let d = measured(&mut w, Err(refused.into()));
    assert_eq!(
        (events(&d).len(), w.batch(0).phase),
        (0, BatchPhase::Soaking)
    );
    assert_eq!(progressing(&w).reason, reasons::METRIC_INCONCLUSIVE);

    // Prometheus answers again: the soak runs from here and passes after 60 s.
    w.tick(30);
    let back = w.now;
    measured(&mut w, Ok(vec![0.0]));
    assert_eq!(progressing(&w).reason, reasons::SOAKING);
    assert_eq!(w.batch(0).soak_started_at, time(back));
    assert_eq!(w.batch(0).analysis[0].consecutive_errors, 0);
    w.tick(30);
    measured(&mut w, Ok(vec![0.0]));
    w.tick(31);
    let d = measured(&mut w, Ok(vec![0.0]));
    assert_eq!(
        events(&d),
        [
            reasons::HEALTH_GATE_PASSED,
            reasons::BATCH_COMPLETED,
            reasons::POINT_OF_NO_RETURN
        ]
    );
}

#[test]
fn an_empty_answer_is_inconclusive_and_waits_without_rolling_back() {
    let (mut w, _) = soaking_healthy(metrics_plan(0, 4));
    measured(&mut w, Ok(vec![]));
    assert_eq!(w.phase(), Phase::Progressing);
    let c = progressing(&w);
    assert_eq!(c.reason, reasons::METRIC_INCONCLUSIVE);
    assert!(
        c.message
            .contains("metric error-rate is inconclusive: the query returned no data"),
        "{}",
        c.message
    );
    let m = &w.batch(0).analysis[0];
    assert_eq!(
        (m.phase, m.inconclusive),
        (MeasurementPhase::Inconclusive, 1)
    );
}

#[test]
fn a_measurement_seen_again_after_a_restart_is_not_counted_twice() {
    let (mut w, _) = soaking_healthy(metrics_plan(1, 4));
    let failed = Measurement {
        batch: 0,
        metric: "error-rate".into(),
        at: w.now,
        result: Ok(vec![0.5]),
    };
    w.obs.measurements = vec![failed.clone()];
    w.step();
    assert_eq!(w.batch(0).analysis[0].failed, 1);
    // A restarted controller decides from the recorded status and the same answer again.
    w.tick(5);
    w.obs.measurements = vec![failed.clone(), failed];
    let d = w.step();
    assert_eq!(w.batch(0).analysis[0].failed, 1, "counted once");
    assert_eq!(w.phase(), Phase::Progressing, "{:?}", events(&d));
}

#[test]
fn a_success_condition_that_is_not_met_is_a_failure() {
    let mut p = metrics_plan(0, 4);
    let a = p.spec.analysis.as_mut().unwrap();
    a.metrics[0].failure_condition = None;
    a.metrics[0].success_condition = Some(crate::api::analysis::Comparison {
        operator: crate::api::analysis::Operator::Ge,
        value: 0.99,
    });
    let (mut w, _) = soaking_healthy(p);
    measured(&mut w, Ok(vec![1.0, 0.9]));
    assert_eq!(w.phase(), Phase::RollingBack);
    let f = w.status().failure.clone().unwrap();
    assert!(
        f.message
            .contains("value 0.9 does not meet the success condition >= 0.99"),
        "{}",
        f.message
    );
}
