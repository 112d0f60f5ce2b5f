//! Phase 5, resolve: the real client address (through trusted proxies only), its country from
//! GeoIP, and jurisdiction evidence found in the request, combined into the subject's plausible
//! jurisdictions.

use domicile_regions::{Evidence, EvidenceSource, Resolution};
use http::{Request, Response};

use crate::body::Body;
use crate::context::RequestContext;
use crate::step::{Step, StepLayer, StepService};

#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveStep;

pub type ResolveLayer = StepLayer<ResolveStep>;
pub type Resolve<S> = StepService<ResolveStep, S>;

/// Weights of each source: a client address is stronger than a phone number in the body.
pub const WEIGHT_GEOIP: u8 = 60;
pub const WEIGHT_PHONE: u8 = 40;

impl Step for ResolveStep {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        let xff = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>();
        let Some(ctx) = req.extensions().get::<RequestContext>() else {
            return Err(crate::context::missing());
        };
        let client = ctx
            .snapshot
            .trusted
            .resolve(ctx.conn.peer.ip(), xff.into_iter());
        let mut evidence = Vec::new();
        let mut address_known = false;
        if let (Some(ip), Some(geo)) = (client.ip, &ctx.snapshot.geoip)
            && let Some(country) = geo.lookup(ip)
        {
            address_known = true;
            evidence.push(Evidence {
                source: EvidenceSource::Geoip,
                country,
                weight: WEIGHT_GEOIP,
                location: "client_address".into(),
            });
        }
        for f in &ctx.inspection.findings {
            if let Some(country) = f.country {
                evidence.push(Evidence {
                    source: EvidenceSource::Phone,
                    country,
                    weight: WEIGHT_PHONE,
                    location: f.location.clone(),
                });
            }
        }
        if client.ignored_forwarded_for {
            metrics::counter!(crate::metrics::FORWARDED_FOR_IGNORED).increment(1);
        }
        let mut resolution = Resolution::from_evidence(evidence);
        resolution.address_unknown = !address_known;
        if let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() {
            ctx.client = Some(client);
            ctx.resolution = Some(resolution);
        }
        Ok(())
    }
}
