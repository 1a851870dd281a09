//! What a feed keeps of a tool's objects of one kind: each object as compact JSON (the text
//! the views parse on a read, without `metadata.managedFields`, and pods without their spec),
//! beside the few fields that selection and the tool's writes are checked against. A kept
//! object costs its text and a handful of small strings, instead of a typed k8s-openapi tree
//! of hundreds of allocations.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One object as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    pub name: Box<str>,
    pub uid: Box<str>,
    pub version: u64,
    /// Being deleted (`metadata.deletionTimestamp` set).
    pub deleting: bool,
    labels: Box<[(Box<str>, Box<str>)]>,
    json: Box<[u8]>,
}

impl Kept {
    /// From an object's JSON as the apiserver sends it; `drop_spec` for kinds whose spec no
    /// reply reads (pods: the job's own template says what runs).
    pub fn from_json(text: &[u8], drop_spec: bool) -> Result<Self, String> {
        let mut object: serde_json::Map<String, Value> =
            serde_json::from_slice(text).map_err(|e| format!("object: {e}"))?;
        if drop_spec {
            object.shift_remove("spec");
        }
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or("object without metadata")?;
        meta.shift_remove("managedFields");
        let text_of = |key: &str| meta.get(key).and_then(Value::as_str).unwrap_or_default();
        let name: Box<str> = text_of("name").into();
        if name.is_empty() {
            return Err("object without a name".into());
        }
        let uid = text_of("uid").into();
        // a feed watches again from the last version it saw, as a number: an object whose
        // version is not one cannot be followed (the feed fails, reads go directly)
        let version = text_of("resourceVersion")
            .parse()
            .map_err(|_| format!("object {name} without a numeric resourceVersion"))?;
        let deleting = meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        let json = serde_json::to_vec(&object)
            .map_err(|e| format!("object: {e}"))?
            .into_boxed_slice();
        Ok(Self {
            name,
            uid,
            version,
            deleting,
            labels,
            json,
        })
    }

    /// Whether the object carries every one of these labels.
    pub fn has_labels(&self, wanted: &BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| {
            self.labels
                .iter()
                .any(|(lk, lv)| **lk == **k && **lv == **v)
        })
    }

    /// The object, typed.
    pub fn parse<K: DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// Bytes held (for tests and the benchmark's accounting).
    #[cfg(test)]
    pub fn text_len(&self) -> usize {
        self.json.len()
    }
}

/// One LIST+WATCH of one kind in the tool's namespace.
pub(crate) struct Feed {
    /// Off for a kind the tool's jobs do not use (the continuous kind not configured).
    pub used: bool,
    /// Pods: kept without their spec.
    pub drop_spec: bool,
    /// In name order (as a LIST gives them); a vector, not a map: most tools have a handful
    /// of objects, and a map node has room for eleven.
    objects: RwLock<Vec<Kept>>,
    /// Listed and watching.
    live: AtomicBool,
    /// Newest resourceVersion delivered (list, event or bookmark).
    version: AtomicU64,
}

impl Feed {
    pub fn new(used: bool, drop_spec: bool) -> Self {
        Self {
            used,
            drop_spec,
            objects: RwLock::new(Vec::new()),
            live: AtomicBool::new(!used),
            version: AtomicU64::new(0),
        }
    }

    pub fn ready(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    /// Newest resourceVersion delivered.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn delivered(&self, version: u64) {
        self.version.fetch_max(version, Ordering::AcqRel);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Kept>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every object (a list), then counts the list's version as delivered.
    pub fn replace(&self, mut objects: Vec<Kept>, version: u64) {
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        objects.dedup_by(|later, earlier| later.name == earlier.name);
        objects.shrink_to_fit();
        *self.write() = objects;
        self.delivered(version);
    }

    /// An object added or changed.
    pub fn put(&self, object: Kept) {
        let version = object.version;
        {
            let mut objects = self.write();
            match objects.binary_search_by(|o| o.name.cmp(&object.name)) {
                Ok(i) => objects[i] = object,
                Err(i) => objects.insert(i, object),
            }
        }
        self.delivered(version);
    }

    /// An object deleted.
    pub fn remove(&self, object: &Kept) {
        {
            let mut objects = self.write();
            if let Ok(i) = objects.binary_search_by(|o| o.name.cmp(&object.name)) {
                objects.remove(i);
            }
            if objects.capacity() > 2 * objects.len() + 4 {
                objects.shrink_to_fit();
            }
        }
        self.delivered(object.version);
    }

    /// Whether none of these objects (by uid) is left, apart from those being deleted (a
    /// direct read would still list those, and so does the feed until they go).
    pub fn gone(&self, uids: &[String]) -> bool {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        !objects
            .iter()
            .any(|o| !o.deleting && uids.iter().any(|u| **u == *o.uid))
    }

    /// The objects carrying `wanted` (every object with `None`), typed, in name order (as a
    /// LIST gives them).
    pub fn select<K: DeserializeOwned>(
        &self,
        wanted: Option<&BTreeMap<String, String>>,
    ) -> Result<Vec<K>, serde_json::Error> {
        if !self.used {
            return Ok(Vec::new());
        }
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects
            .iter()
            .filter(|o| wanted.is_none_or(|w| o.has_labels(w)))
            .map(Kept::parse)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, job: &str, version: u64, deleting: bool) -> Kept {
        let deletion = if deleting {
            r#","deletionTimestamp":"2026-01-01T00:00:00Z""#
        } else {
            ""
        };
        let text = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","uid":"uid-{name}","resourceVersion":"{version}","labels":{{"app.kubernetes.io/name":"{job}","toolforge":"tool"}},"managedFields":[{{"manager":"kubelet"}}]{deletion}}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}},"status":{{"phase":"Running"}}}}"#
        );
        Kept::from_json(text.as_bytes(), true).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn feed_of(pods: Vec<Kept>) -> Feed {
        let feed = Feed::new(true, true);
        let version = pods.iter().map(|p| p.version).max().unwrap_or(0);
        feed.replace(pods, version);
        feed
    }

    #[test]
    fn an_object_is_kept_without_managed_fields_and_pods_without_their_spec() {
        let kept = pod("a", "web", 7, false);
        assert_eq!((&*kept.name, &*kept.uid, kept.version), ("a", "uid-a", 7));
        let back: Pod = kept.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.metadata.managed_fields, None);
        assert_eq!(back.spec, None);
        assert_eq!(
            back.status.and_then(|s| s.phase).as_deref(),
            Some("Running")
        );
        assert!(!String::from_utf8_lossy(&kept.json).contains("managedFields"));
        // kept compact: white space goes, everything else stays
        let text = br#"{"metadata":{"name":"j","resourceVersion":"3"},"spec":{"x":1}}"#;
        let spaced = br#"{ "metadata": {"name": "j", "resourceVersion": "3"},
            "spec": {"x": 1} }"#;
        let with_spec = Kept::from_json(spaced, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&*with_spec.json, &text[..]);
        assert_eq!(with_spec.text_len(), text.len());
    }

    #[test]
    fn objects_without_a_name_or_metadata_are_refused() {
        assert!(Kept::from_json(br#"{"metadata":{"uid":"u"}}"#, false).is_err());
        assert!(Kept::from_json(br#"{"kind":"Pod"}"#, false).is_err());
        assert!(Kept::from_json(b"[1]", false).is_err());
        assert!(Kept::from_json(b"{", false).is_err());
        assert!(Kept::from_json(
            br#"{"metadata":{"name":"a","resourceVersion":"x1"}}"#,
            false
        )
        .is_err());
    }

    #[test]
    fn selection_is_by_every_label_in_name_order() {
        let feed = feed_of(vec![
            pod("b", "web", 3, false),
            pod("a", "web", 2, false),
            pod("c", "cron", 4, false),
        ]);
        let web = BTreeMap::from([("app.kubernetes.io/name".to_string(), "web".to_string())]);
        let names: Vec<_> = feed
            .select::<Pod>(Some(&web))
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let both = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "web".to_string()),
            ("toolforge".to_string(), "other".to_string()),
        ]);
        assert!(feed
            .select::<Pod>(Some(&both))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
        assert_eq!(feed.select::<Pod>(None).map(|p| p.len()).ok(), Some(3));
        assert_eq!(feed.version(), 4);
        let unused = Feed::new(false, false);
        assert!(unused.ready());
        assert_eq!(unused.select::<Pod>(None).map(|p| p.len()).ok(), Some(0));
    }

    #[test]
    fn events_change_and_remove_objects_and_advance_the_version() {
        let feed = feed_of(vec![pod("a", "web", 2, false)]);
        feed.put(pod("a", "cron", 9, false));
        let cron = BTreeMap::from([("app.kubernetes.io/name".to_string(), "cron".to_string())]);
        assert_eq!(
            feed.select::<Pod>(Some(&cron)).map(|p| p.len()).ok(),
            Some(1)
        );
        assert_eq!(feed.version(), 9);
        feed.remove(&pod("a", "cron", 11, false));
        assert_eq!(feed.select::<Pod>(None).map(|p| p.len()).ok(), Some(0));
        assert_eq!(feed.version(), 11);
        // a bookmark older than what was delivered does not go back
        feed.delivered(5);
        assert_eq!(feed.version(), 11);
    }

    #[test]
    fn a_delete_counts_as_delivered_once_nothing_deleted_is_left_but_what_is_being_deleted() {
        let deleted = ["uid-a".to_string(), "uid-b".to_string()];
        let feed = feed_of(vec![pod("a", "web", 2, false), pod("b", "web", 3, true)]);
        assert!(!feed.gone(&deleted));
        let feed = feed_of(vec![pod("b", "web", 3, true), pod("c", "cron", 4, false)]);
        assert!(feed.gone(&deleted));
        // a new object of the same name is another object
        let mut again = pod("a", "web", 5, false);
        again.uid = "uid-a2".into();
        let feed = feed_of(vec![again]);
        assert!(feed.gone(&deleted));
    }
}
