//! `versionInfo`: versions and feature flags (docs/protocol.md).
//!
//! `implementedFeatures` tells the truth: `implemented` means this build has the code,
//! `available` means it is configured and usable right now.
//!
//! Two schemas are documented and which one the cloud reads now is unknown.
//! `[compat] version_info_schema` picks: `"new"` (default: `eventTime`, `partnerId`,
//! `pluginVersion` as an integer, `restaurantVersion`, `restaurantLicenseDateEnd`), `"old"`
//! (the dotted keys `partner.id`, `plugin.version` as a string, `restaurant.version`,
//! `restaurant.license.date.end`; `plugin.compilation.timestamp` is not sent, the build carries no
//! compile time) or `"both"` (the new keys, then the old).
//! `rID`, `updateInfo`, `additionalInfo` and `implementedFeatures` are sent in every form.

use std::sync::atomic::Ordering;

use super::{Answer, Ctx, OpError};
use crate::config::VersionInfoSchema;
use crate::json::JsonBuf;
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
            implemented: true,
            available: ctx.cfg.cache.enabled && ctx.cache_ok.load(Ordering::Relaxed),
            info: &[],
        },
        Feature {
            code: "ORDER_ON_TABLE",
            implemented: true,
            // The mirror has the menu and stop list the order is checked against.
            available: ctx
                .mirror
                .with(|c| crate::mirror::check::missing(c, super::create_order_on_table::NEEDS))
                .is_ok_and(|m| m.is_empty()),
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

/// What `restaurantVersion` / `restaurant.version` says.
pub const RESTAURANT_VERSION: &str = concat!("expirenza-agent ", env!("CARGO_PKG_VERSION"));

fn write_new(j: &mut JsonBuf, ctx: &Ctx, event_time: &str, rid: &str) {
    j.f_str("eventTime", event_time)
        .f_str("partnerId", &ctx.cfg.partner_id)
        .f_str("rID", rid)
        .f_int("pluginVersion", plugin_version())
        .f_str("restaurantVersion", RESTAURANT_VERSION)
        .f_str("restaurantLicenseDateEnd", &ctx.cfg.compat.license_date_end);
}

/// The older schema's dotted keys.
fn write_old(j: &mut JsonBuf, ctx: &Ctx) {
    j.f_str("partner.id", &ctx.cfg.partner_id)
        .f_str("plugin.version", &plugin_version().to_string())
        .f_str("restaurant.version", RESTAURANT_VERSION)
        .f_str(
            "restaurant.license.date.end",
            &ctx.cfg.compat.license_date_end,
        );
}

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    body(ctx, env.rid.as_str(), &crate::clock::utc_iso_now())
}

/// The answer for `rid` at `event_time` (the tests' golden bodies fix the time).
pub fn body(ctx: &Ctx, rid: &str, event_time: &str) -> Result<Answer, OpError> {
    let mut j = ctx.body();
    j.begin_obj();
    match ctx.cfg.compat.version_info_schema {
        VersionInfoSchema::New => write_new(&mut j, ctx, event_time, rid),
        VersionInfoSchema::Old => {
            j.f_str("rID", rid);
            write_old(&mut j, ctx);
        }
        VersionInfoSchema::Both => {
            write_new(&mut j, ctx, event_time, rid);
            write_old(&mut j, ctx);
        }
    }
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
                j.f_int(*k, *v);
            }
            j.end_obj();
        }
        j.end_obj();
    }
    j.end_arr().end_obj();
    Answer::callback(j, "SUCCESS")
}
