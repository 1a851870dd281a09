//! The quota reply: the tool's Kubernetes ResourceQuota and LimitRange, plus the gateway's
//! own job limits, in the two shapes the clients know (spec §5).
//!
//! * release 13/14 (`GET /api/v1/quota/`): counts are JSON integers, cpu and memory are the
//!   raw quantity strings, per-job items have no `used` key;
//! * 16.x (`/v1/tool/<t>/quotas`): every value is a string, cpu goes through
//!   [`format_cpu`], memory through [`format_memory`], per-job items carry `"used": null`.
//!
//! Missing quota keys never fail the request: the item is simply left out, and a category
//! left without items is left out too (the CLI looks at the first item of each category).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::wire::{Quota, QuotaCategory, QuotaItem, QuotaValue};

/// The gateway's own job limits, shown as an extra category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayJobUsage {
    pub running_limit: u32,
    pub running_used: usize,
    pub scheduled_limit: u32,
    pub scheduled_used: usize,
}

const KEY_PODS: &str = "pods";
const KEY_JOBS: &str = "count/jobs.batch";
const KEY_CRONJOBS: &str = "count/cronjobs.batch";
const KEY_CPU: &str = "limits.cpu";
const KEY_MEMORY: &str = "limits.memory";
const KEY_RC: &str = "count/replicationcontrollers";
const KEY_RC_PLAIN: &str = "replicationcontrollers";
const KEY_DEPLOYMENTS: &str = "count/deployments.apps";

/// Which of the two reply shapes is being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Legacy,
    V1,
}

/// What an item's value is, which decides how it is rendered in each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    Cpu,
    Memory,
}

type QuantityMap = BTreeMap<String, Quantity>;

/// Release 13/14 shape: `{"categories":[...]}`; counts as JSON integers, cpu/memory as the
/// raw strings.
pub fn legacy_quota(
    rq: Option<&ResourceQuota>,
    lr: Option<&LimitRange>,
    continuous_count_key: &str,
    gateway: &GatewayJobUsage,
) -> Quota {
    build(Shape::Legacy, rq, lr, continuous_count_key, gateway)
}

/// 16.x shape: the inner `{"categories":[...]}` with every value a string and per-job items
/// with `"used": null`. The caller wraps it in `{"quota": ..., "messages": {}}`.
pub fn v1_quota(
    rq: Option<&ResourceQuota>,
    lr: Option<&LimitRange>,
    continuous_count_key: &str,
    gateway: &GatewayJobUsage,
) -> Quota {
    build(Shape::V1, rq, lr, continuous_count_key, gateway)
}

fn build(
    shape: Shape,
    rq: Option<&ResourceQuota>,
    lr: Option<&LimitRange>,
    continuous_count_key: &str,
    gateway: &GatewayJobUsage,
) -> Quota {
    let mut categories = Vec::new();
    let empty = QuantityMap::new();
    let (hard, used) = rq.map(quota_maps).unwrap_or((&empty, &empty));

    if rq.is_some() {
        let items: Vec<QuotaItem> = [
            (
                "Total running jobs at once (Kubernetes pods)",
                KEY_PODS,
                Kind::Count,
            ),
            ("Running one-off and cron jobs", KEY_JOBS, Kind::Count),
            ("CPU", KEY_CPU, Kind::Cpu),
            ("Memory", KEY_MEMORY, Kind::Memory),
        ]
        .iter()
        .filter_map(|(name, key, kind)| used_item(shape, name, hard, used, key, *kind))
        .collect();
        push_category(&mut categories, "Running jobs", items);
    }

    if let Some(max) = lr.and_then(container_max) {
        let items: Vec<QuotaItem> = [
            ("CPU", "cpu", Kind::Cpu),
            ("Memory", "memory", Kind::Memory),
        ]
        .iter()
        .filter_map(|(name, key, kind)| {
            let limit = render(shape, *kind, &max.get(*key)?.0)?;
            Some(QuotaItem {
                name: name.to_string(),
                limit: Some(limit),
                used: match shape {
                    Shape::Legacy => None,
                    Shape::V1 => Some(None),
                },
            })
        })
        .collect();
        push_category(&mut categories, "Per-job limits", items);
    }

    if rq.is_some() {
        let mut items = Vec::new();
        items.extend(used_item(
            shape,
            "Cron jobs",
            hard,
            used,
            KEY_CRONJOBS,
            Kind::Count,
        ));
        if let Some(key) = continuous_key(hard, continuous_count_key) {
            items.extend(used_item(
                shape,
                "Continuous jobs (including web services)",
                hard,
                used,
                key,
                Kind::Count,
            ));
        }
        push_category(&mut categories, "Job definitions", items);
    }

    let count = |n: u64| match shape {
        Shape::Legacy => QuotaValue::Count(i64::try_from(n).unwrap_or(i64::MAX)),
        Shape::V1 => QuotaValue::Text(n.to_string()),
    };
    let item = |name: &str, limit: u64, used: u64| QuotaItem {
        name: name.to_string(),
        limit: Some(count(limit)),
        used: Some(Some(count(used))),
    };
    categories.push(QuotaCategory {
        name: "Gateway job limits".to_string(),
        items: vec![
            item(
                "Running one-off and continuous jobs",
                u64::from(gateway.running_limit),
                gateway.running_used as u64,
            ),
            item(
                "Scheduled jobs",
                u64::from(gateway.scheduled_limit),
                gateway.scheduled_used as u64,
            ),
        ],
    });

    Quota { categories }
}

fn push_category(categories: &mut Vec<QuotaCategory>, name: &str, items: Vec<QuotaItem>) {
    if !items.is_empty() {
        categories.push(QuotaCategory {
            name: name.to_string(),
            items,
        });
    }
}

/// The limits (status.hard, or spec.hard while the quota controller has not filled the
/// status in yet) and the usage (status.used) of a ResourceQuota.
fn quota_maps(rq: &ResourceQuota) -> (&QuantityMap, &QuantityMap) {
    static EMPTY: QuantityMap = QuantityMap::new();
    let status = rq.status.as_ref();
    let status_hard = status
        .and_then(|s| s.hard.as_ref())
        .filter(|m| !m.is_empty());
    let hard = status_hard
        .or_else(|| rq.spec.as_ref().and_then(|s| s.hard.as_ref()))
        .unwrap_or(&EMPTY);
    let used = status.and_then(|s| s.used.as_ref()).unwrap_or(&EMPTY);
    (hard, used)
}

/// `max` of the first LimitRange entry of type Container.
fn container_max(lr: &LimitRange) -> Option<&QuantityMap> {
    lr.spec
        .as_ref()?
        .limits
        .iter()
        .find(|item| item.type_ == "Container")?
        .max
        .as_ref()
}

/// The quota key counting continuous jobs: the configured one, else the closest fallback
/// present in the quota.
fn continuous_key<'a>(hard: &QuantityMap, configured: &'a str) -> Option<&'a str> {
    let fallbacks: &[&'static str] = match configured {
        KEY_RC => &[KEY_RC_PLAIN, KEY_DEPLOYMENTS],
        KEY_RC_PLAIN => &[KEY_RC, KEY_DEPLOYMENTS],
        KEY_DEPLOYMENTS => &[KEY_RC, KEY_RC_PLAIN],
        _ => &[KEY_RC, KEY_RC_PLAIN, KEY_DEPLOYMENTS],
    };
    std::iter::once(configured)
        .chain(fallbacks.iter().copied())
        .find(|key| hard.contains_key(*key))
}

/// An item with limit and used. Left out when the limit is missing or unreadable; a missing
/// usage (quota not reconciled yet) reads as zero, so every item of the category keeps its
/// `used` key.
fn used_item(
    shape: Shape,
    name: &str,
    hard: &QuantityMap,
    used: &QuantityMap,
    key: &str,
    kind: Kind,
) -> Option<QuotaItem> {
    let limit = render(shape, kind, &hard.get(key)?.0)?;
    let used = used
        .get(key)
        .and_then(|q| render(shape, kind, &q.0))
        .or_else(|| render(shape, kind, "0"))?;
    Some(QuotaItem {
        name: name.to_string(),
        limit: Some(limit),
        used: Some(Some(used)),
    })
}

fn render(shape: Shape, kind: Kind, raw: &str) -> Option<QuotaValue> {
    match (shape, kind) {
        (_, Kind::Count) => {
            let n = count_value(raw)?;
            Some(match shape {
                Shape::Legacy => QuotaValue::Count(n),
                Shape::V1 => QuotaValue::Text(n.to_string()),
            })
        }
        (Shape::Legacy, _) => Some(QuotaValue::Text(raw.trim().to_string())),
        (Shape::V1, Kind::Cpu) => Some(QuotaValue::Text(format_cpu(raw))),
        (Shape::V1, Kind::Memory) => Some(QuotaValue::Text(format_memory(raw))),
    }
}

/// A count quantity ("10", also "1k") as an integer.
fn count_value(raw: &str) -> Option<i64> {
    let v = parse_quantity(raw)?.round();
    if v.abs() < 9.0e15 {
        Some(v as i64)
    } else {
        None
    }
}

/// Value of a Kubernetes quantity in base units (cores, bytes): `123`, `1.5`, `500m`,
/// `512Mi`, `1G`, `1e3`, with an optional sign. None when it is not a quantity.
fn parse_quantity(raw: &str) -> Option<f64> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let (sign, unsigned) = match s.as_bytes()[0] {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let split = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let value = match suffix {
        "" => n,
        "n" => n / 1e9,
        "u" => n / 1e6,
        "m" => n / 1e3,
        "k" => n * 1e3,
        "M" => n * 1e6,
        "G" => n * 1e9,
        "T" => n * 1e12,
        "P" => n * 1e15,
        "E" => n * 1e18,
        "Ki" => n * 1024f64,
        "Mi" => n * 1024f64.powi(2),
        "Gi" => n * 1024f64.powi(3),
        "Ti" => n * 1024f64.powi(4),
        "Pi" => n * 1024f64.powi(5),
        "Ei" => n * 1024f64.powi(6),
        _ => {
            // Decimal exponent: 1e3, 1E-2.
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let e: i32 = exp.parse().ok()?;
            n * 10f64.powi(e)
        }
    };
    let value = sign * value;
    value.is_finite().then_some(value)
}

/// Shortest text of a float, always with a decimal point ("4.0", "0.5"), like Python's str().
fn float_text(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0.0"
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// CPU as a decimal number of cores: `"4"` → `"4.0"`, `"500m"` → `"0.5"`, `"1.5"` → `"1.5"`.
/// Text that is not a quantity is returned unchanged.
pub fn format_cpu(q: &str) -> String {
    match parse_quantity(q) {
        // Round away float noise from the suffix division (1e-9 is the smallest unit).
        Some(v) => float_text((v * 1e9).round() / 1e9),
        None => q.to_string(),
    }
}

/// Memory in GiB, two decimals at most, at least one: `"8Gi"` → `"8.0Gi"`,
/// `"512Mi"` → `"0.5Gi"`, `"1G"` → `"0.93Gi"`. Text that is not a quantity is returned
/// unchanged.
pub fn format_memory(q: &str) -> String {
    let Some(bytes) = parse_quantity(q) else {
        return q.to_string();
    };
    let gib = bytes / 1024f64.powi(3);
    let mut s = format!("{gib:.2}");
    if s == "-0.00" {
        s = "0.00".to_string();
    }
    let trimmed = s.trim_end_matches('0');
    let text = if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    };
    format!("{text}Gi")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    // the replies as JSON, as the clients see them
    fn legacy_quota(
        rq: Option<&ResourceQuota>,
        lr: Option<&LimitRange>,
        key: &str,
        gw: &GatewayJobUsage,
    ) -> Value {
        serde_json::to_value(super::legacy_quota(rq, lr, key, gw)).unwrap_or_default()
    }

    fn v1_quota(
        rq: Option<&ResourceQuota>,
        lr: Option<&LimitRange>,
        key: &str,
        gw: &GatewayJobUsage,
    ) -> Value {
        serde_json::to_value(super::v1_quota(rq, lr, key, gw)).unwrap_or_default()
    }
    use k8s_openapi::api::core::v1::{
        LimitRangeItem, LimitRangeSpec, ResourceQuotaSpec, ResourceQuotaStatus,
    };

    fn qmap(pairs: &[(&str, &str)]) -> QuantityMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    fn fixture_rq() -> ResourceQuota {
        let hard = qmap(&[
            ("pods", "10"),
            ("count/jobs.batch", "15"),
            ("count/cronjobs.batch", "50"),
            ("count/replicationcontrollers", "3"),
            ("count/deployments.apps", "4"),
            ("limits.cpu", "4"),
            ("limits.memory", "8Gi"),
            ("requests.cpu", "2"),
            ("requests.memory", "4Gi"),
            ("services", "1"),
        ]);
        let used = qmap(&[
            ("pods", "2"),
            ("count/jobs.batch", "1"),
            ("count/cronjobs.batch", "3"),
            ("count/replicationcontrollers", "1"),
            ("count/deployments.apps", "0"),
            ("limits.cpu", "500m"),
            ("limits.memory", "512Mi"),
        ]);
        ResourceQuota {
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard.clone()),
                ..Default::default()
            }),
            status: Some(ResourceQuotaStatus {
                hard: Some(hard),
                used: Some(used),
            }),
            ..Default::default()
        }
    }

    fn fixture_lr() -> LimitRange {
        LimitRange {
            spec: Some(LimitRangeSpec {
                limits: vec![
                    LimitRangeItem {
                        type_: "Pod".into(),
                        max: Some(qmap(&[("cpu", "8"), ("memory", "16Gi")])),
                        ..Default::default()
                    },
                    LimitRangeItem {
                        type_: "Container".into(),
                        max: Some(qmap(&[("cpu", "1"), ("memory", "4Gi")])),
                        min: Some(qmap(&[("cpu", "50m"), ("memory", "100Mi")])),
                        ..Default::default()
                    },
                ],
            }),
            ..Default::default()
        }
    }

    fn gw() -> GatewayJobUsage {
        GatewayJobUsage {
            running_limit: 16,
            running_used: 3,
            scheduled_limit: 50,
            scheduled_used: 7,
        }
    }

    #[test]
    fn legacy_full_shape() {
        let v = legacy_quota(
            Some(&fixture_rq()),
            Some(&fixture_lr()),
            "count/replicationcontrollers",
            &gw(),
        );
        let expected = json!({"categories": [
            {"name": "Running jobs", "items": [
                {"name": "Total running jobs at once (Kubernetes pods)", "limit": 10, "used": 2},
                {"name": "Running one-off and cron jobs", "limit": 15, "used": 1},
                {"name": "CPU", "limit": "4", "used": "500m"},
                {"name": "Memory", "limit": "8Gi", "used": "512Mi"}]},
            {"name": "Per-job limits", "items": [
                {"name": "CPU", "limit": "1"},
                {"name": "Memory", "limit": "4Gi"}]},
            {"name": "Job definitions", "items": [
                {"name": "Cron jobs", "limit": 50, "used": 3},
                {"name": "Continuous jobs (including web services)", "limit": 3, "used": 1}]},
            {"name": "Gateway job limits", "items": [
                {"name": "Running one-off and continuous jobs", "limit": 16, "used": 3},
                {"name": "Scheduled jobs", "limit": 50, "used": 7}]}]});
        assert_eq!(v, expected);
    }

    #[test]
    fn v1_full_shape() {
        let v = v1_quota(
            Some(&fixture_rq()),
            Some(&fixture_lr()),
            "count/deployments.apps",
            &gw(),
        );
        let expected = json!({"categories": [
            {"name": "Running jobs", "items": [
                {"name": "Total running jobs at once (Kubernetes pods)", "limit": "10", "used": "2"},
                {"name": "Running one-off and cron jobs", "limit": "15", "used": "1"},
                {"name": "CPU", "limit": "4.0", "used": "0.5"},
                {"name": "Memory", "limit": "8.0Gi", "used": "0.5Gi"}]},
            {"name": "Per-job limits", "items": [
                {"name": "CPU", "limit": "1.0", "used": null},
                {"name": "Memory", "limit": "4.0Gi", "used": null}]},
            {"name": "Job definitions", "items": [
                {"name": "Cron jobs", "limit": "50", "used": "3"},
                {"name": "Continuous jobs (including web services)", "limit": "4", "used": "0"}]},
            {"name": "Gateway job limits", "items": [
                {"name": "Running one-off and continuous jobs", "limit": "16", "used": "3"},
                {"name": "Scheduled jobs", "limit": "50", "used": "7"}]}]});
        assert_eq!(v, expected);
    }

    #[test]
    fn no_kubernetes_objects_only_gateway_category() {
        for v in [
            legacy_quota(None, None, KEY_RC, &gw()),
            v1_quota(None, None, KEY_RC, &gw()),
        ] {
            let cats = v["categories"].as_array().cloned().unwrap_or_default();
            assert_eq!(cats.len(), 1);
            assert_eq!(cats[0]["name"], "Gateway job limits");
        }
    }

    #[test]
    fn empty_objects_do_not_crash() {
        let rq = ResourceQuota::default();
        let lr = LimitRange::default();
        let v = legacy_quota(Some(&rq), Some(&lr), KEY_RC, &gw());
        assert_eq!(v["categories"].as_array().map(Vec::len), Some(1));
        let v = v1_quota(Some(&rq), Some(&lr), KEY_RC, &gw());
        assert_eq!(v["categories"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn missing_keys_leave_items_out_and_missing_used_reads_zero() {
        let rq = ResourceQuota {
            spec: Some(ResourceQuotaSpec {
                hard: Some(qmap(&[
                    ("limits.cpu", "2"),
                    ("count/cronjobs.batch", "5"),
                    ("replicationcontrollers", "2"),
                ])),
                ..Default::default()
            }),
            status: Some(ResourceQuotaStatus {
                hard: Some(QuantityMap::new()),
                used: None,
            }),
            ..Default::default()
        };
        let v = legacy_quota(Some(&rq), None, KEY_RC, &gw());
        let expected = json!([
            {"name": "Running jobs", "items": [{"name": "CPU", "limit": "2", "used": "0"}]},
            {"name": "Job definitions", "items": [
                {"name": "Cron jobs", "limit": 5, "used": 0},
                {"name": "Continuous jobs (including web services)", "limit": 2, "used": 0}]},
        ]);
        assert_eq!(v["categories"][0], expected[0]);
        assert_eq!(v["categories"][1], expected[1]);
        assert_eq!(v["categories"][2]["name"], "Gateway job limits");
        let v = v1_quota(Some(&rq), None, KEY_RC, &gw());
        assert_eq!(v["categories"][0]["items"][0]["used"], "0.0");
    }

    #[test]
    fn unparsable_count_is_left_out() {
        let mut rq = fixture_rq();
        if let Some(s) = rq.status.as_mut() {
            if let Some(h) = s.hard.as_mut() {
                h.insert("pods".into(), Quantity("lots".into()));
            }
        }
        let v = legacy_quota(Some(&rq), None, KEY_RC, &gw());
        assert_eq!(
            v["categories"][0]["items"][0]["name"],
            "Running one-off and cron jobs"
        );
    }

    #[test]
    fn continuous_key_fallbacks() {
        let hard = qmap(&[("count/deployments.apps", "3")]);
        assert_eq!(continuous_key(&hard, KEY_RC), Some(KEY_DEPLOYMENTS));
        let hard = qmap(&[
            ("replicationcontrollers", "3"),
            ("count/deployments.apps", "3"),
        ]);
        assert_eq!(continuous_key(&hard, KEY_RC), Some(KEY_RC_PLAIN));
        let hard = qmap(&[("count/replicationcontrollers", "3")]);
        assert_eq!(continuous_key(&hard, KEY_DEPLOYMENTS), Some(KEY_RC));
        assert_eq!(continuous_key(&QuantityMap::new(), KEY_RC), None);
    }

    #[test]
    fn limitrange_without_container_entry_skips_per_job() {
        let mut lr = fixture_lr();
        if let Some(spec) = lr.spec.as_mut() {
            spec.limits.retain(|i| i.type_ != "Container");
        }
        let v = v1_quota(None, Some(&lr), KEY_RC, &gw());
        assert_eq!(v["categories"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn cpu_format() {
        assert_eq!(format_cpu("4"), "4.0");
        assert_eq!(format_cpu("500m"), "0.5");
        assert_eq!(format_cpu("1.5"), "1.5");
        assert_eq!(format_cpu("100m"), "0.1");
        assert_eq!(format_cpu("1500m"), "1.5");
        assert_eq!(format_cpu("0"), "0.0");
        assert_eq!(format_cpu("2k"), "2000.0");
        assert_eq!(format_cpu("1e3"), "1000.0");
        assert_eq!(format_cpu("bogus"), "bogus");
    }

    #[test]
    fn memory_format() {
        assert_eq!(format_memory("8Gi"), "8.0Gi");
        assert_eq!(format_memory("512Mi"), "0.5Gi");
        assert_eq!(format_memory("1G"), "0.93Gi");
        assert_eq!(format_memory("100Mi"), "0.1Gi");
        assert_eq!(format_memory("1536Mi"), "1.5Gi");
        assert_eq!(format_memory("0"), "0.0Gi");
        assert_eq!(format_memory("1Ti"), "1024.0Gi");
        assert_eq!(format_memory("1073741824"), "1.0Gi");
        assert_eq!(format_memory("x"), "x");
    }

    #[test]
    fn quantity_parsing() {
        assert_eq!(parse_quantity("10"), Some(10.0));
        assert_eq!(parse_quantity("1k"), Some(1000.0));
        assert_eq!(parse_quantity("2Ki"), Some(2048.0));
        assert_eq!(parse_quantity("-1"), Some(-1.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert_eq!(parse_quantity("1e-3"), Some(1e-3));
        for bad in ["", ".", "1.2.3", "1X", "Gi", "1e", "1e+", "1e1234"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
        assert_eq!(count_value("1k"), Some(1000));
        assert_eq!(count_value("1E"), None);
    }
}
