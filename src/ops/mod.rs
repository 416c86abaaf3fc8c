//! Operations: one file per operation, one registry here.
//!
//! Each operation module exposes
//! `pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError>`
//! which parses its own fields from the frame, reads the mirror (or journal), and writes the
//! callback body with [`crate::json::JsonBuf`]. The JSON field names of each answer live in that
//! operation's file (and the bill shape, shared by several, in `bill.rs`), so a correction of
//! the cloud's real shape touches one file.

pub mod bill;
pub mod categories_info;
pub mod check_products_restrictions;
pub mod check_work;
pub mod create_order_on_table;
pub mod get_bill;
pub mod hallplans_info;
pub mod journaled;
pub mod list;
pub mod menu_info;
pub mod pay_bill;
pub mod set_settings;
pub mod show_message;
pub mod split_order;
pub mod stop_list;
pub mod substate;
pub mod tables_info;
pub mod users_info;
pub mod version_info;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::callback::CallbackClient;
use crate::config::Config;
use crate::journal::Journal;
use crate::json::{BodyTooLarge, JsonBuf};
use crate::mirror::{Mirror, MirrorError};
use crate::request::Envelope;

/// Everything an operation may use. Shared by all in-flight operations.
pub struct Ctx {
    pub cfg: Arc<Config>,
    pub mirror: Mirror,
    pub callback: Arc<CallbackClient>,
    /// True while the ORDERS_CACHE pusher is enabled and its last push succeeded.
    pub cache_ok: AtomicBool,
    /// The durable command journal (opened lazily; see `journal/mod.rs`).
    pub journal: Journal,
}

impl Ctx {
    pub fn new(cfg: Arc<Config>, callback: Arc<CallbackClient>) -> Ctx {
        let mirror = Mirror::new(
            &cfg.mirror_path,
            cfg.mirror.busy_timeout_ms,
            cfg.mirror.max_connections,
        );
        let journal = Journal::new(&cfg);
        Ctx {
            cfg,
            mirror,
            callback,
            cache_ok: AtomicBool::new(false),
            journal,
        }
    }
    /// A body writer capped by `[limits] max_body_bytes`.
    pub fn body(&self) -> JsonBuf {
        JsonBuf::new(self.cfg.limits.max_body_bytes)
    }
    pub fn max_rows(&self) -> usize {
        self.cfg.limits.max_rows
    }
}

/// What an operation produced.
#[derive(Debug)]
pub enum Answer {
    /// POST this body to the operation's callback path. `outcome` is for the log line.
    Callback { body: Vec<u8>, outcome: String },
    /// Nothing to send (showMessage, setSettings).
    None { outcome: String },
}

impl Answer {
    pub fn callback(j: JsonBuf, outcome: impl Into<String>) -> Result<Answer, OpError> {
        Ok(Answer::Callback {
            body: j.finish()?,
            outcome: outcome.into(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
    #[error("{0} is not implemented in this build")]
    NotImplemented(&'static str),
    #[error("mirror: {0}")]
    Mirror(#[from] MirrorError),
    #[error("{0}")]
    Other(String),
}

macro_rules! operations {
    ($( $variant:ident => $name:literal, $path:expr, $module:path; )*) => {
        /// Every operation the protocol names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Op { $( $variant, )* }

        impl Op {
            pub const ALL: &'static [Op] = &[ $( Op::$variant, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Op::$variant => $name, )* }
            }

            /// The callback path (`/callback/<path>`), or `None` for operations with no answer.
            pub fn callback_path(self) -> Option<&'static str> {
                match self { $( Op::$variant => $path, )* }
            }
        }

        pub fn handle(op: Op, ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
            match op { $( Op::$variant => $module(ctx, env, frame), )* }
        }
    };
}

operations! {
    CheckWork => "checkWork", Some("checkWork"), check_work::handle;
    VersionInfo => "versionInfo", Some("versionInfo"), version_info::handle;
    TablesInfo => "tablesInfo", Some("tablesInfo"), tables_info::handle;
    HallplansInfo => "hallplansInfo", Some("hallplansInfo"), hallplans_info::handle;
    GetBill => "getBill", Some("getBill"), get_bill::handle;
    UsersInfo => "usersInfo", Some("usersInfo"), users_info::handle;
    CategoriesInfo => "categoriesInfo", Some("categoriesInfo"), categories_info::handle;
    MenuInfo => "menuInfo", Some("menuInfo"), menu_info::handle;
    StopList => "stopList", Some("stopList"), stop_list::handle;
    CheckProductsRestrictions => "checkProductsRestrictions", Some("checkProductsRestrictions"), check_products_restrictions::handle;
    PayBill => "payBill", Some("payBill"), pay_bill::handle;
    SplitOrder => "splitOrder", Some("splitOrder"), split_order::handle;
    CreateOrderOnTable => "createOrderOnTable", Some("createOrderOnTable"), create_order_on_table::handle;
    ShowMessage => "showMessage", None, show_message::handle;
    SetSettings => "setSettings", None, set_settings::handle;
}

impl Op {
    /// Case-sensitive match first, then case-insensitive (the odd `hallplansInfo` casing).
    pub fn from_name(s: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == s).or_else(|| {
            Op::ALL
                .iter()
                .copied()
                .find(|o| o.name().eq_ignore_ascii_case(s))
        })
    }
}

/// Writes `{"rID":…,"state":"FAIL","substate":…,"errorMessage":…}` plus `extra` fields.
pub fn fail_body(
    ctx: &Ctx,
    rid: &str,
    substate: &str,
    message: &str,
    extra: impl FnOnce(&mut JsonBuf),
) -> Result<Answer, OpError> {
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .f_str("state", "FAIL")
        .f_str("substate", substate)
        .f_str("errorMessage", message);
    extra(&mut j);
    j.end_obj();
    Answer::callback(j, format!("FAIL {substate}"))
}
