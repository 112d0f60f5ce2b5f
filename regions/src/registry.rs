//! The region registry: where Domicile can send data, which country that is, and who runs it.

use std::sync::Arc;

use domicile_policy::{Country, Entity};
use rustc_hash::FxHashMap as HashMap;

/// A deployment region with its operating entity.
#[derive(Debug, Clone)]
pub struct Region {
    pub id: Arc<str>,
    pub country: Country,
    pub entity: Arc<Entity>,
    /// Subjects from these countries call this region home.
    pub serves: Vec<Country>,
}

/// All configured regions, by id and by the countries they serve.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    regions: Vec<Region>,
    by_id: HashMap<Arc<str>, usize>,
    home: HashMap<Country, usize>,
}

/// A registry that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("region {0:?} is defined twice")]
    Duplicate(String),
    #[error("country {country} is served by both {first:?} and {second:?}")]
    DoubleHome {
        country: Country,
        first: String,
        second: String,
    },
}

impl Registry {
    pub fn new(regions: Vec<Region>) -> Result<Registry, Vec<RegistryError>> {
        let mut errors = Vec::new();
        let mut by_id = HashMap::default();
        let mut home = HashMap::default();
        for (n, r) in regions.iter().enumerate() {
            if by_id.insert(r.id.clone(), n).is_some() {
                errors.push(RegistryError::Duplicate(r.id.to_string()));
            }
            for c in &r.serves {
                if let Some(prev) = home.insert(*c, n) {
                    errors.push(RegistryError::DoubleHome {
                        country: *c,
                        first: regions[prev].id.to_string(),
                        second: r.id.to_string(),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(Registry {
                regions,
                by_id,
                home,
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, id: &str) -> Option<&Region> {
        self.by_id.get(id).map(|&n| &self.regions[n])
    }

    /// The region that subjects of `country` call home.
    pub fn home_for(&self, country: Country) -> Option<&Region> {
        self.home.get(&country).map(|&n| &self.regions[n])
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
}
