//! `[compat]`: the choices where the protocol is unclear (docs/protocol.md §6).

use serde::Deserialize;

/// `users[].roles` shape: the protocol shows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolesForm {
    String,
    Array,
}

/// Which key(s) tablesInfo writes a table's hall under: the official Postman page spells it
/// `hallplanId`, the Go SDK `hallPlanId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HallPlanKey {
    /// Both keys, with the same value (default).
    #[serde(rename = "both")]
    Both,
    #[serde(rename = "hallplanId")]
    Lower,
    #[serde(rename = "hallPlanId")]
    Camel,
}

/// Which versionInfo schema to write: the newer one (`partnerId`, `pluginVersion`, …), the
/// older one with dotted keys (`partner.id`, `plugin.version`, …), or both key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionInfoSchema {
    New,
    Old,
    Both,
}

/// Where ORDERS_CACHE reports closed orders: in their own webhook (what the docs describe,
/// default) or as `closedOrders` inside the ORDERS_CACHE body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedOrdersShape {
    Separate,
    Inline,
}

/// Choices where the protocol reference is [inferred] (`[compat]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// `"string"` (default, `"Офіціант, Кур'єр"`) or `"array"`.
    pub users_roles: RolesForm,
    /// Send versionInfo unprompted after each connect. Default false.
    pub version_info_on_connect: bool,
    /// `restaurantLicenseDateEnd` in versionInfo (`yyyy.MM.dd`). Default "2099.12.31".
    pub license_date_end: String,
    /// splitOrder: refuse a `controlSum` that differs from the chosen lines (FAIL
    /// `WRONG_CONTROL_SUM`). Default false: log the mismatch and split.
    pub strict_control_sum: bool,
    /// tablesInfo hall key(s): `"both"` (default), `"hallplanId"` or `"hallPlanId"`.
    pub tables_hall_plan_key: HallPlanKey,
    /// versionInfo schema: `"new"` (default), `"old"` or `"both"`.
    pub version_info_schema: VersionInfoSchema,
    /// ORDERS_CACHE closed orders: `"separate"` (default) or `"inline"`.
    pub closed_orders: ClosedOrdersShape,
}

impl Default for CompatConfig {
    fn default() -> Self {
        CompatConfig {
            users_roles: RolesForm::String,
            version_info_on_connect: false,
            license_date_end: "2099.12.31".into(),
            strict_control_sum: false,
            tables_hall_plan_key: HallPlanKey::Both,
            version_info_schema: VersionInfoSchema::New,
            closed_orders: ClosedOrdersShape::Separate,
        }
    }
}
