// `sqlx::migrate!` embeds the migration files at compile time; a new file must rebuild this
// crate, which cargo does not know without being told.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
