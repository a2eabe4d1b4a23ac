package main

import (
	"context"
	"fmt"
	"os"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/simulate"
)

// startSimulatedWorker starts the coordinator with the simulated replayer
// in place of Chromium (WORKER_REPLAYER=simulated): no browser is launched,
// every action only takes its recorded time. Everything else is real.
func startSimulatedWorker(ctx context.Context, b *backends, sys *actor.ActorSystem, m *actors.Metrics) (*actors.Worker, error) {
	cfg := b.cfg
	rep, err := simulate.New(simulate.Config{FailureRate: cfg.SimulationFailureRate, CrashRate: cfg.SimulationCrashRate, Log: b.log})
	if err != nil {
		return nil, fmt.Errorf("WORKER_REPLAYER=simulated: %w", err)
	}
	for _, dir := range []string{cfg.ScreenshotStorage, cfg.VideoStoragePath, cfg.FilesPath} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("storage folder %s: %w", dir, err)
		}
	}
	b.log.Warn("SIMULATED REPLAYER: this worker runs no browser; its runs' results are made up (WORKER_REPLAYER=simulated)",
		"failureRate", cfg.SimulationFailureRate, "crashRate", cfg.SimulationCrashRate)
	w, err := actors.StartWorker(ctx, actors.Deps{
		System: sys, Runs: b.runs, Queue: b.queue, Log: b.log, Metrics: m, Replayer: rep,
		Worker: cfg.WorkerName, Version: version, Concurrency: cfg.WorkerConcurrency, Lease: cfg.Lease,
		ScreenshotDir: cfg.ScreenshotStorage, VideoDir: cfg.VideoStoragePath, FilesDir: cfg.FilesPath,
		Events:    b.events,
		Artifacts: b.store,
	})
	if err != nil {
		return nil, err
	}
	b.log.Info("worker started", "worker", cfg.WorkerName, "concurrency", cfg.WorkerConcurrency, "replayer", ReplayerSimulated)
	return w, nil
}
