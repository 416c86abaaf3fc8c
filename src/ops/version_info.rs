//! `versionInfo`: versions and feature flags (protocol reference §5.13, newer schema).
//!
//! `implementedFeatures` tells the truth: `implemented` means this build has the code,
//! `available` means it is configured and usable right now.

use std::sync::atomic::Ordering;

use super::{Answer, Ctx, OpError};
use crate::request::Envelope;

pub struct Feature {
    pub code: &'static str,
    pub implemented: bool,
    pub available: bool,
    /// `info` object, as a list of integer fields.
    pub info: &'static [(&'static str, i64)],
}

/// The feature list, evaluated now.
pub fn features(ctx: &Ctx) -> Vec<Feature> {
    vec![
        // Modifiers are shown in the bill (`linkedTo`): always on.
        Feature {
            code: "BILL_V_2",
            implemented: true,
            available: true,
            info: &[],
        },
        Feature {
            code: "STOP_LIST",
            implemented: true,
            available: super::stop_list::available(ctx),
            info: &[],
        },
        Feature {
            code: "ORDERS_CACHE",
            implemented: false,
            available: ctx.cfg.cache.enabled && ctx.cache_ok.load(Ordering::Relaxed),
            info: &[],
        },
        Feature {
            code: "ORDER_ON_TABLE",
            implemented: false,
            available: false,
            info: &[("orderTypeCode", 1)],
        },
    ]
}

/// `pluginVersion` must grow with every release: major*10000 + minor*100 + patch.
pub fn plugin_version() -> i64 {
    let p = |s: &str| s.parse::<i64>().unwrap_or(0);
    p(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + p(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + p(env!("CARGO_PKG_VERSION_PATCH"))
}

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("eventTime", &crate::clock::utc_iso_now())
        .f_str("partnerId", &ctx.cfg.partner_id)
        .f_str("rID", env.rid.as_str())
        .f_int("pluginVersion", plugin_version())
        .f_str(
            "restaurantVersion",
            concat!("expirenza-agent ", env!("CARGO_PKG_VERSION")),
        )
        .f_str("restaurantLicenseDateEnd", &ctx.cfg.compat.license_date_end);
    j.key("updateInfo").begin_arr().end_arr();
    j.key("additionalInfo")
        .begin_obj()
        .f_str("posSystem", &ctx.cfg.pos_system)
        .end_obj();
    j.key("implementedFeatures").begin_arr();
    for f in features(ctx) {
        j.begin_obj()
            .f_str("feature", f.code)
            .f_bool("available", f.available)
            .f_bool("implemented", f.implemented);
        if !f.info.is_empty() {
            j.key("info").begin_obj();
            for (k, v) in f.info {
                j.f_int(k, *v);
            }
            j.end_obj();
        }
        j.end_obj();
    }
    j.end_arr().end_obj();
    Answer::callback(j, "SUCCESS")
}
