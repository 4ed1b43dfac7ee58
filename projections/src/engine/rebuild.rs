//! Rebuilds: new generations built beside the live ones, one or many in one pass over the log.

use super::*;

/// A generation [`Engine::rebuild_all`] builds, and what it knows about it between passes.
struct Build {
    p: Arc<dyn Projection>,
    generation: i64,
    done: bool,
    failures: u32,
    /// When the state and the lease were last checked; `None`: check on the next pass.
    checked: Option<Instant>,
    /// Whether this process held the lease when last checked.
    held: bool,
    /// The new generation's checkpoint as this process left it, while it holds the lease.
    cp: Option<Checkpoint>,
}

impl Build {
    fn new(p: Arc<dyn Projection>, generation: i64) -> Self {
        Self {
            p,
            generation,
            done: false,
            failures: 0,
            checked: None,
            held: false,
            cp: None,
        }
    }

    /// Drops what was known: after a failure or a switch, the next pass reads it all again.
    fn forget(&mut self) {
        self.checked = None;
        self.cp = None;
    }
}

impl Engine {
    /// Rebuilds one projection beside the live one and switches to it. Runs the build itself
    /// when no other runner holds the lease; otherwise follows the runner's progress.
    pub async fn rebuild(
        &self,
        name: &str,
        mut progress: impl FnMut(i64, i64),
    ) -> anyhow::Result<()> {
        self.rebuild_all(&[name], |_, position, head| progress(position, head))
            .await
    }

    /// Rebuilds several projections in one pass over the log: their new generations are built
    /// side by side, a batch at a time each, so every batch is read and decrypted once (the
    /// recent-batch cache) and applied to each. Each generation keeps its own transactions and
    /// checkpoint, so a runner holding some of the leases (`serve`) builds those and this call
    /// follows them. `progress(name, position, head)` reports each building generation.
    pub async fn rebuild_all(
        &self,
        names: &[&str],
        progress: impl FnMut(&str, i64, i64),
    ) -> anyhow::Result<()> {
        let mut builds = Vec::new();
        for name in names {
            let p = self.projection(name)?.clone();
            let state = self.ensure_state(p.as_ref()).await?;
            let generation = match state.building {
                Some((g, _)) => g,
                None => self.start_build(p.as_ref(), p.version()).await?,
            };
            builds.push(Build::new(p, generation));
        }
        let head = self.log.head().await?.position;
        // Transient failures are waited out for as long as an operator would wait at a prompt.
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut progress = progress;
        if self.db.is_sqlite() {
            // One writer at a time: the generations take turns, a batch each.
            while builds.iter().any(|b| !b.done) {
                let mut stepped = false;
                for b in builds.iter_mut().filter(|b| !b.done) {
                    stepped |= self.rebuild_turn(b, head, deadline, &mut progress).await?;
                }
                if !stepped && builds.iter().any(|b| !b.done) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            return Ok(());
        }
        // On PostgreSQL each generation goes at its own pace, on a connection and a task of its
        // own, sharing the batches it reads (the recent-batch cache): with a barrier after
        // every batch, each round would last as long as its slowest projection while the
        // others waited, and in one task the generations' row building took turns on one core
        // while the other waited on the database.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for mut b in builds {
            let (engine, tx) = (self.clone(), tx.clone());
            tasks.spawn(async move {
                let mut report = |name: &str, position, head| {
                    let _ = tx.send((name.to_owned(), position, head));
                };
                while !b.done {
                    if !engine
                        .rebuild_turn(&mut b, head, deadline, &mut report)
                        .await?
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                anyhow::Ok(())
            });
        }
        drop(tx);
        loop {
            tokio::select! {
                Some((name, position, head)) = rx.recv() => progress(&name, position, head),
                joined = tasks.join_next() => match joined {
                    // The first failure ends the rebuild: dropping the set aborts the others,
                    // whose generations stay building for the next rebuild to resume.
                    Some(result) => result.context("a rebuild task panicked")??,
                    None => break,
                },
            }
        }
        while let Ok((name, position, head)) = rx.try_recv() {
            progress(&name, position, head);
        }
        Ok(())
    }

    /// One [`Engine::rebuild_pass`], reporting progress and waiting out a transient failure;
    /// whether it stepped the build (false: another runner holds the lease).
    async fn rebuild_turn(
        &self,
        b: &mut Build,
        head: i64,
        deadline: Instant,
        progress: &mut impl FnMut(&str, i64, i64),
    ) -> anyhow::Result<bool> {
        match self.rebuild_pass(b).await {
            Ok((ran, position)) => {
                b.failures = 0;
                if let Some(position) = position {
                    progress(b.p.name(), position, head);
                }
                Ok(ran)
            }
            Err(e) => {
                b.failures += 1;
                b.forget();
                self.wait_out(b.p.name(), e, b.failures, deadline).await?;
                Ok(true)
            }
        }
    }

    /// One turn of a rebuild for one projection: applies the next batch to its new generation
    /// when this process holds the lease (otherwise follows the runner that does), and marks
    /// the build done once the new generation serves reads and has caught up. Returns whether
    /// this process applied anything, and the new generation's position.
    ///
    /// The state and the lease are checked, and the live generation stepped, a few times per
    /// lease period rather than for every batch: a batch then costs its read (shared between
    /// the generations), its rows and one checkpoint update.
    async fn rebuild_pass(&self, b: &mut Build) -> anyhow::Result<(bool, Option<i64>)> {
        let p = b.p.clone();
        let name = p.name();
        if b.checked.is_none_or(|at| at.elapsed() >= LEASE / 5) {
            b.forget();
            let state = self.load_state(name).await?.context("no state")?;
            if state.active_generation == b.generation {
                // Include everything committed before the rebuild was asked for, even what the
                // follower horizon held back at the moment of the switch.
                if self.try_lease(name).await? {
                    self.catch_up(p.as_ref(), Duration::from_secs(600)).await?;
                }
                b.done = true;
                return Ok((false, None));
            }
            b.held = self.try_lease(name).await?;
            b.checked = Some(Instant::now());
            if b.held {
                // Reads keep being served from the live generation until the switch.
                self.process_batch(p.as_ref(), state.active_generation, None)
                    .await?;
            }
        }
        if !b.held {
            let position = self
                .checkpoint(name, b.generation)
                .await
                .ok()
                .map(|cp| cp.cursor.position);
            return Ok((false, position));
        }
        let cp = match b.cp.take() {
            Some(cp) => cp,
            None => self.checkpoint(name, b.generation).await?,
        };
        let (applied, cp) = self
            .apply_next(p.as_ref(), b.generation, cp, None, Commit::Deferred)
            .await?;
        if applied == 0 {
            // Nothing left to read: `step` decides the switch, with its checks that the new
            // generation is not behind the live one.
            self.step(p.as_ref()).await?;
            b.forget();
        } else {
            b.cp = Some(cp);
        }
        Ok((true, Some(cp.cursor.position)))
    }
}
