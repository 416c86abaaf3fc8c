//! Operations: one file per operation, one registry here.
//!
//! Each operation module exposes
//! `pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError>`
//! which parses its own fields from the frame, reads the mirror (or journal), and writes the
//! callback body with [`crate::json::JsonBuf`]. The JSON field names of each answer live in that
//! operation's file (and the Order shape, shared by several, in `wire/order.rs`), so a correction of
//! the cloud's real shape touches one file.

pub mod categories_info;
pub mod check_products_restrictions;
pub mod check_work;
pub mod create_order_on_table;
pub mod get_bill;
pub mod hallplans_info;
pub mod journaled;
pub mod kept;
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

pub use crate::ctx::Ctx;
use crate::json::{BodyTooLarge, JsonBuf};
use crate::mirror::check::Needs;
use crate::mirror::orders;
use crate::mirror::MirrorError;
use crate::request::Envelope;

/// What an operation produced.
pub enum Answer {
    /// POST this body to the operation's callback path. `outcome` is for the log line.
    Callback { body: Vec<u8>, outcome: String },
    /// Nothing to send (showMessage, setSettings).
    None { outcome: String },
    /// A body too large to hold (menuInfo past `max_body_bytes`): already signed and measured
    /// by its first pass; the transport streams its second pass (`body_stream`).
    Stream {
        body: crate::body_stream::StreamBody,
        outcome: String,
    },
    /// Journal command `id` waits for the POS: the dispatcher polls it on a timer (the wait
    /// stage, holding no thread), then runs `resume` with the row as it then stands (or the
    /// error reading it) in the compute stage again.
    AwaitPos { id: i64, resume: Resume },
}

/// The rest of a journal-backed operation, after the wait for the POS.
pub type Resume = Box<
    dyn FnOnce(
            &Ctx,
            Result<crate::journal::Command, crate::journal::JournalError>,
        ) -> Result<Answer, OpError>
        + Send,
>;

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Callback { body, outcome } => f
                .debug_struct("Callback")
                .field("bytes", &body.len())
                .field("outcome", outcome)
                .finish(),
            Answer::None { outcome } => f.debug_struct("None").field("outcome", outcome).finish(),
            Answer::AwaitPos { id, .. } => f.debug_struct("AwaitPos").field("id", id).finish(),
            Answer::Stream { body, outcome } => f
                .debug_struct("Stream")
                .field("bytes", &body.len())
                .field("outcome", outcome)
                .finish(),
        }
    }
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
    #[error("mirror: {0}")]
    Mirror(#[from] MirrorError),
    #[error("{0}")]
    Other(String),
}

macro_rules! operations {
    ($( $variant:ident => $name:literal, $path:expr, $module:path,
        needs = $needs:expr, core = $core:literal, inline = $inline:literal,
        kept = $kept:literal; )*) => {
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

            /// The mirror tables and columns the operation reads (empty: it reads none).
            /// `expirenza-agent check` reports each operation against its needs.
            pub fn mirror_needs(self) -> Needs {
                match self { $( Op::$variant => $needs, )* }
            }

            /// Every restaurant needs this operation: a mirror that cannot serve it is a
            /// problem (`check` exits 1). The others (menu, staff, stop list, ...) are optional.
            pub fn is_core(self) -> bool {
                match self { $( Op::$variant => $core, )* }
            }

            /// A short read of the mirror with no side effects: the dispatcher computes it on its
            /// event-loop thread (no hand-off to the blocking pool) when `[limits] inline_reads`
            /// is on, and gives it to the pool only if the mirror is locked. Journal writes
            /// (they fsync) and menuInfo (it can be large) always run on the pool.
            pub fn is_inline(self) -> bool {
                match self { $( Op::$variant => $inline, )* }
            }

            /// The operation keeps its answers per mirror version (`crate::answers`, through
            /// `kept.rs`) when every object in its needs is a real table.
            pub fn keeps_answers(self) -> bool {
                match self { $( Op::$variant => $kept, )* }
            }
        }

        /// Runs `op`'s handler. Each handler is a call of its own, never inlined here: the
        /// stack frame of one (a splitOrder's fixed-capacity fields, say) is then taken only
        /// when that operation runs, not by every request through this match.
        pub fn handle(op: Op, ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
            match op {
                $( Op::$variant => {
                    #[inline(never)]
                    #[allow(non_snake_case)] // named after its operation, for profiles
                    fn $variant(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
                        $module(ctx, env, frame)
                    }
                    $variant(ctx, env, frame)
                } )*
            }
        }
    };
}

// Adding an operation: its file in this directory, and one row here.
// Columns: variant => wire name, callback path, handler, the mirror tables/columns it reads
// (`needs`, checked by `expirenza-agent check`), whether every restaurant needs it (`core`),
// whether it is a short side-effect-free read computed on the event loop (`inline`), and
// whether it keeps its answers per mirror version (`kept`, through `kept.rs`).
operations! {
    CheckWork => "checkWork", Some("checkWork"), check_work::handle,
        needs = orders::NEEDS, core = true, inline = true, kept = false;
    VersionInfo => "versionInfo", Some("versionInfo"), version_info::handle,
        needs = &[], core = false, inline = true, kept = false;
    TablesInfo => "tablesInfo", Some("tablesInfo"), tables_info::handle,
        needs = tables_info::NEEDS, core = true, inline = true, kept = true;
    HallplansInfo => "hallplansInfo", Some("hallplansInfo"), hallplans_info::handle,
        needs = hallplans_info::NEEDS, core = true, inline = true, kept = true;
    GetBill => "getBill", Some("getBill"), get_bill::handle,
        needs = orders::NEEDS, core = true, inline = true, kept = true;
    UsersInfo => "usersInfo", Some("usersInfo"), users_info::handle,
        needs = users_info::NEEDS, core = false, inline = true, kept = true;
    CategoriesInfo => "categoriesInfo", Some("categoriesInfo"), categories_info::handle,
        needs = categories_info::NEEDS, core = false, inline = true, kept = true;
    MenuInfo => "menuInfo", Some("menuInfo"), menu_info::handle,
        needs = menu_info::NEEDS, core = false, inline = false, kept = false;
    StopList => "stopList", Some("stopList"), stop_list::handle,
        needs = stop_list::NEEDS, core = false, inline = true, kept = true;
    CheckProductsRestrictions => "checkProductsRestrictions", Some("checkProductsRestrictions"),
        check_products_restrictions::handle,
        needs = check_products_restrictions::NEEDS, core = false, inline = true, kept = false;
    PayBill => "payBill", Some("payBill"), pay_bill::handle,
        needs = pay_bill::NEEDS, core = true, inline = false, kept = false;
    SplitOrder => "splitOrder", Some("splitOrder"), split_order::handle,
        needs = split_order::NEEDS, core = true, inline = false, kept = false;
    CreateOrderOnTable => "createOrderOnTable", Some("createOrderOnTable"),
        create_order_on_table::handle,
        needs = create_order_on_table::NEEDS, core = false, inline = false, kept = false;
    ShowMessage => "showMessage", None, show_message::handle,
        needs = &[], core = false, inline = false, kept = false;
    SetSettings => "setSettings", None, set_settings::handle,
        needs = &[], core = false, inline = false, kept = false;
}

impl Op {
    /// Writes the journal when it runs: the dispatcher gives these slots of their own on the
    /// blocking pool, outside the `max_in_flight` compute slots (`dispatch/compute.rs`), so a long
    /// wait for the journal's lock holds no slot a read needs.
    pub fn writes_journal(self) -> bool {
        matches!(
            self,
            Op::PayBill
                | Op::SplitOrder
                | Op::CreateOrderOnTable
                | Op::ShowMessage
                | Op::SetSettings
        )
    }

    /// Moves money (the guest has been, or will be, charged): payBill, splitOrder,
    /// createOrderOnTable. Every one the agent receives leaves a durable record, even one
    /// refused before it started (`journaled::keep_refused`).
    pub fn moves_money(self) -> bool {
        matches!(self, Op::PayBill | Op::SplitOrder | Op::CreateOrderOnTable)
    }

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

/// What a money operation's frame says for its journal row (bill, externalId, sum, tips), read
/// as far as it can be: a frame that does not parse gives what can be sniffed from it.
pub(crate) fn money_fields(op: Op, frame: &[u8]) -> journaled::RowFields {
    let sniff = |key| crate::request::sniff_field(frame, key);
    let mut f = journaled::RowFields::default();
    match op {
        Op::PayBill => match pay_bill::parse(frame) {
            Ok(p) => {
                f.bill_id = Some(p.bill_id);
                f.sum_kop = Some(p.sum.0);
                f.tips_kop = p.tips.map(|t| t.0);
            }
            Err(_) => f.bill_id = sniff("billId"),
        },
        Op::SplitOrder => {
            f.bill_id = split_order::parse(frame)
                .ok()
                .map(|p| p.bill_id.to_string())
                .or_else(|| sniff("billId"));
        }
        Op::CreateOrderOnTable => {
            f.external_id = create_order_on_table::parse(frame)
                .ok()
                .map(|p| p.external_id)
                .or_else(|| sniff("externalId"));
        }
        _ => {}
    }
    f
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
