//! `checkWork`: liveness (docs/protocol.md, [code] only). `readyToWork` is true when the
//! mirror can be read and has what getBill needs.

use super::{Answer, Ctx, OpError};
use crate::mirror::orders;
use crate::request::Envelope;

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let ready = match ctx.mirror.missing(orders::NEEDS) {
        Ok(missing) if missing.is_empty() => Ok(()),
        Ok(missing) => Err(format!("mirror lacks {}", missing.join(", "))),
        Err(e) => Err(e.to_string()),
    };
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", env.rid.as_str())
        .f_str("dateTime", &crate::clock::pos_datetime_now())
        .f_bool("readyToWork", ready.is_ok());
    if let Err(why) = &ready {
        j.f_str("errorMessage", why);
    }
    j.end_obj();
    Answer::callback(
        j,
        if ready.is_ok() {
            "SUCCESS ready".to_string()
        } else {
            "SUCCESS not-ready".to_string()
        },
    )
}
