//! The container images a job may use, by short name.
//!
//! The list has the shape of Toolforge's `images-v1.yaml`: a map from canonical name to
//! `{state, aliases, variants: {jobs-framework: {image}}}`. Only entries with a
//! `jobs-framework` variant are usable. Without a configured file a built-in list is used.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub canonical_name: String,
    pub aliases: Vec<String>,
    /// Full container reference, with tag.
    pub container: String,
    pub state: String,
}

#[derive(Debug, Clone, Default)]
pub struct ImageCatalog {
    images: Vec<Image>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    variants: BTreeMap<String, RawVariant>,
}

#[derive(Deserialize)]
struct RawVariant {
    image: String,
}

const BUILTIN: &str = r#"
bookworm:
  state: stable
  aliases: [tf-bookworm]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-bookworm-sssd}
bullseye:
  state: deprecated
  aliases: [tf-bullseye-std]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-bullseye-sssd}
python3.11:
  state: stable
  aliases: [tf-python311]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-python311-sssd-base}
php8.2:
  state: stable
  aliases: [tf-php82]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-php82-sssd-base}
node18:
  state: stable
  aliases: [tf-node18]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-node18-sssd-base}
"#;

impl ImageCatalog {
    pub fn builtin() -> Self {
        // The built-in text is a constant checked by a unit test.
        Self::from_yaml(BUILTIN).unwrap_or_default()
    }

    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, RawEntry> =
            serde_yaml::from_str(text).map_err(|e| format!("image list: {e}"))?;
        let mut images = Vec::new();
        for (name, entry) in raw {
            let Some(variant) = entry.variants.get("jobs-framework") else {
                continue;
            };
            let container = if variant
                .image
                .rsplit('/')
                .next()
                .is_some_and(|l| l.contains(':'))
            {
                variant.image.clone()
            } else {
                format!("{}:latest", variant.image)
            };
            images.push(Image {
                canonical_name: name,
                aliases: entry.aliases,
                container,
                state: entry.state.unwrap_or_else(|| "stable".into()),
            });
        }
        if images.is_empty() {
            return Err("image list: no entry has a jobs-framework variant".into());
        }
        Ok(Self { images })
    }

    /// The image a run request names, by canonical name or alias.
    pub fn resolve(&self, name: &str) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.canonical_name == name || i.aliases.iter().any(|a| a == name))
    }

    /// The image behind a container reference (for show/list).
    pub fn by_container(&self, container: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.container == container)
    }

    /// Images offered to users: stable ones, sorted by name.
    pub fn listed(&self) -> Vec<&Image> {
        let mut v: Vec<&Image> = self.images.iter().filter(|i| i.state == "stable").collect();
        v.sort_by(|a, b| a.canonical_name.cmp(&b.canonical_name));
        v
    }

    pub fn valid_names(&self) -> String {
        self.listed()
            .iter()
            .map(|i| i.canonical_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_parses_and_resolves_aliases() {
        let c = ImageCatalog::from_yaml(BUILTIN).unwrap_or_else(|e| panic!("{e}"));
        let img = c.resolve("tf-python311").map(|i| i.canonical_name.clone());
        assert_eq!(img.as_deref(), Some("python3.11"));
        assert_eq!(
            c.resolve("bookworm").map(|i| i.container.as_str()),
            Some("docker-registry.tools.wmflabs.org/toolforge-bookworm-sssd:latest")
        );
        assert!(c.resolve("nope").is_none());
        assert!(
            !c.valid_names().contains("bullseye"),
            "deprecated images are not offered"
        );
        assert!(
            c.resolve("bullseye").is_some(),
            "deprecated images still run"
        );
    }

    #[test]
    fn entries_without_a_jobs_variant_are_skipped() {
        let c = ImageCatalog::from_yaml(
            "a:\n  variants:\n    webservice: {image: x}\nb:\n  variants:\n    jobs-framework: {image: 'r/b:1.0'}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.resolve("a").is_none());
        assert_eq!(
            c.resolve("b").map(|i| i.container.as_str()),
            Some("r/b:1.0")
        );
        assert!(ImageCatalog::from_yaml("a: {}\n").is_err());
    }
}
