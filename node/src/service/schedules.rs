//! `SCHEDULE ADD|LIST|REMOVE`: periodic tasks. A token manages its own schedules (their tasks
//! are its tasks, within its limits), at most its `max_schedules` of them; names are its own
//! (another token may use the same name for another schedule). An admin lists all, and its
//! `SCHEDULE REMOVE` removes every schedule of the name.

use super::{ServiceError, Services};
use crate::auth::Identity;
use crate::db::schedules::{Put, ScheduleRow};
use crate::periodic::Cron;
use protocol::{Missed, NewSchedule, ScheduleInfo, ScheduleList, ScheduleRemoved};

/// The longest schedule name.
const MAX_NAME: usize = 100;

fn info(row: ScheduleRow) -> ScheduleInfo {
    ScheduleInfo {
        payload: String::from_utf8_lossy(&row.payload).into_owned(),
        missed: Missed::parse(&row.missed).unwrap_or_default(),
        name: row.name,
        cron: row.cron,
        tz: row.tz,
        kind: row.kind,
        next_at: row.next_at,
        last_at: row.last_at,
        last_task: row.last_task,
        owner: (!row.owner.is_empty()).then_some(row.owner),
        skipped: row.skipped.max(0) as u64,
        last_skip: row.last_skip,
        disabled: row.disabled_at.is_some(),
    }
}

impl Services {
    /// `SCHEDULE ADD`: add a schedule, or replace one of the same name (its own, or any for an
    /// admin). Its first tick is the first after now.
    pub async fn add_schedule(
        &self,
        new: NewSchedule,
        who: &Identity,
    ) -> Result<ScheduleInfo, ServiceError> {
        Services::may_submit(who)?;
        let name = new.name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ServiceError::Invalid(format!(
                "a schedule's name is 1 to {MAX_NAME} letters, digits, `-`, `_`, `.` or `:`"
            )));
        }
        let kind = new.kind.trim().to_ascii_lowercase();
        self.check_kind(&kind)?;
        if new.payload.len() > self.inline_limit {
            return Err(ServiceError::Invalid(format!(
                "a schedule's payload is at most {} bytes",
                self.inline_limit
            )));
        }
        let cron = Cron::parse(&new.cron, new.tz.as_deref()).map_err(ServiceError::Invalid)?;
        let now = chrono::Utc::now();
        let next_at = cron.after(now).ok_or_else(|| {
            ServiceError::Invalid(format!("`{}` never ticks after now", new.cron))
        })?;
        let row = ScheduleRow {
            name: name.to_string(),
            cron: new.cron.split_whitespace().collect::<Vec<_>>().join(" "),
            tz: cron.tz().to_string(),
            kind,
            payload: new.payload.into_bytes(),
            missed: new.missed.as_str().to_string(),
            owner: who.owner().unwrap_or_default().to_string(),
            ..ScheduleRow::unfired(next_at)
        };
        let max = who
            .limits
            .max_schedules
            .unwrap_or(crate::auth::tokens::DEFAULT_MAX_SCHEDULES);
        if let Put::Full(max) = self.handles.store.put_schedule(&row, max).await? {
            return Err(ServiceError::QuotaExceeded(format!(
                "this token may have {max} schedules (max_schedules); remove one first"
            )));
        }
        tracing::info!(schedule = %row.name, cron = %row.cron, tz = %row.tz, "schedule added");
        Ok(info(row))
    }

    /// `SCHEDULE LIST`: a token's schedules (every schedule for an admin).
    pub async fn list_schedules(&self, who: &Identity) -> Result<ScheduleList, ServiceError> {
        let owner = (!who.is_admin()).then(|| who.owner().unwrap_or_default().to_string());
        let rows = self.handles.store.schedules(owner.as_deref()).await?;
        Ok(ScheduleList {
            schedules: rows.into_iter().map(info).collect(),
        })
    }

    /// `SCHEDULE REMOVE <name>`: no more ticks (tasks it made already go on).
    pub async fn remove_schedule(
        &self,
        name: String,
        who: &Identity,
    ) -> Result<ScheduleRemoved, ServiceError> {
        Services::may_submit(who)?;
        let owner = (!who.is_admin()).then(|| who.owner().unwrap_or_default().to_string());
        match self
            .handles
            .store
            .remove_schedule(&name, owner.as_deref())
            .await?
        {
            true => Ok(ScheduleRemoved { removed: name }),
            false => Err(ServiceError::NoSuchSchedule(name)),
        }
    }
}
