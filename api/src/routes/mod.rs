//! The `/v1` routes, grouped by path so each path's methods share one router entry.

pub(crate) mod activities;
pub(crate) mod admin;
pub(crate) mod aggregates;
mod coach;
mod correlations;
mod efficiency;
mod export;
pub(crate) mod impersonation;
pub(crate) mod import;
mod inject;
pub(crate) mod journal;
pub(crate) mod me;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::routes as auth;

/// Every route, in the order the OpenAPI document lists them.
pub fn router() -> OpenApiRouter<AppState> {
    let r = staff_routes(OpenApiRouter::new());
    let r = account_routes(r);
    journal_and_coach_routes(r)
}

/// The admin API, and the export and access-log routes that arrived with it.
fn staff_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(admin::list_users))
        .routes(routes!(admin::get_user))
        .routes(routes!(admin::suspend_user))
        .routes(routes!(admin::reinstate_user))
        .routes(routes!(admin::set_role))
        .routes(routes!(admin::user_audit))
        .routes(routes!(admin::user_replay))
        .routes(routes!(admin::security_log))
        .routes(routes!(admin::metrics))
        .routes(routes!(admin::health))
        .routes(routes!(impersonation::start))
        .routes(routes!(inject::inject))
        .routes(routes!(admin::run_correlations))
        .routes(routes!(export::request))
        .routes(routes!(export::get))
        .routes(routes!(export::download))
        .routes(routes!(aggregates::catalogue))
        .routes(routes!(aggregates::run))
        .routes(routes!(impersonation::end))
        .routes(routes!(impersonation::access_log))
}

/// Sign-in, the account, activities, efficiency and correlations.
fn account_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(me::get_me, me::patch_me, me::erase_me))
        .routes(routes!(me::get_preferences, me::patch_preferences))
        .routes(routes!(me::get_onboarding))
        .routes(routes!(me::post_onboarding_step))
        .routes(routes!(me::list_coaches))
        .routes(routes!(me::grant_coach, me::revoke_coach))
        .routes(routes!(
            activities::create_activity,
            activities::list_activities
        ))
        .routes(routes!(
            activities::get_activity,
            activities::patch_activity,
            activities::delete_activity
        ))
        .routes(routes!(activities::put_workout_type))
        .routes({
            // Files are far larger than the JSON bodies the global limit is sized for.
            let (schemas, paths, method) = routes!(import::import_activities);
            (
                schemas,
                paths,
                method.layer(DefaultBodyLimit::max(import::MAX_REQUEST_BYTES)),
            )
        })
        .routes(routes!(efficiency::get_efficiency))
        .routes(routes!(efficiency::trends))
        .routes(routes!(efficiency::training_load))
        .routes(routes!(correlations::list))
        .routes(routes!(correlations::what_works))
        .routes(routes!(correlations::what_doesnt_work))
        .routes(routes!(correlations::combinations))
        .routes(routes!(correlations::recompute))
        .routes(routes!(correlations::get_job))
        .routes(routes!(
            activities::post_feedback,
            activities::get_feedback,
            activities::put_feedback,
            activities::delete_feedback
        ))
        .routes(routes!(activities::pending_feedback))
}

/// The journal (check-ins, nutrition, work, body, availability, insight feedback) and the
/// coach's read-only views.
fn journal_and_coach_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(journal::put_checkin, journal::get_checkin))
        .routes(routes!(journal::list_checkins))
        .routes(routes!(journal::create_nutrition, journal::list_nutrition))
        .routes(routes!(journal::list_presets, journal::create_preset))
        .routes(routes!(
            journal::get_nutrition,
            journal::patch_nutrition,
            journal::delete_nutrition
        ))
        .routes(routes!(journal::put_work, journal::get_work))
        .routes(routes!(journal::list_work))
        .routes(routes!(journal::put_body, journal::get_body))
        .routes(routes!(journal::list_body))
        .routes(routes!(
            journal::get_availability,
            journal::put_availability
        ))
        .routes(routes!(journal::patch_slot))
        .routes(routes!(journal::post_insight_feedback))
        .routes(routes!(journal::insight_feedback_stats))
        .routes(routes!(coach::roster))
        .routes(routes!(coach::athlete_profile))
        .routes(routes!(coach::athlete_activities))
        .routes(routes!(coach::athlete_activity))
        .routes(routes!(coach::athlete_checkins))
        .routes(routes!(coach::athlete_nutrition))
        .routes(routes!(coach::athlete_work))
        .routes(routes!(coach::athlete_body))
        .routes(routes!(coach::athlete_availability))
}
