// Command floor is the bare floor the API is measured against: Fiber v2 and
// pgxpool, the project's own dependencies, with no authentication, rate
// limit, logging or metrics, serving the same queries as the API's run
// endpoints. It answers on the API's paths so one wrk script fits both.
//
//	go run ./internal/bench/floor -addr 127.0.0.1:3950 -db postgres://... -user <uuid> -recording <uuid>
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:3950", "listen address")
	dsn := flag.String("db", "", "PostgreSQL URL")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	stream := flag.String("stream", "floor:runs", "Redis stream POST /runs adds to")
	user := flag.String("user", "", "the user whose runs are read and written")
	recording := flag.String("recording", "", "the recording POST /runs creates runs of")
	actions := flag.Int("actions", 10, "pending action rows written per created run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, *dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	one := func(c *fiber.Ctx, sql string, args ...any) error {
		rows, _ := pool.Query(c.Context(), sql, args...)
		m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
		if err == pgx.ErrNoRows {
			return c.SendStatus(fiber.StatusNotFound)
		}
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"data": m})
	}
	many := func(c *fiber.Ctx, sql string, args ...any) error {
		rows, _ := pool.Query(c.Context(), sql, args...)
		ms, err := pgx.CollectRows(rows, pgx.RowToMap)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"data": ms})
	}
	app.Get("/api/v1/runs/:id", func(c *fiber.Ctx) error {
		return one(c, `SELECT * FROM runs WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL`, c.Params("id"), *user)
	})
	app.Get("/api/v1/runs/:id/actions", func(c *fiber.Ctx) error {
		return many(c, `SELECT * FROM run_actions WHERE run_id = $1 ORDER BY action_index`, c.Params("id"))
	})
	app.Get("/api/v1/runs", func(c *fiber.Ctx) error {
		limit, _ := strconv.Atoi(c.Query("limit", "20"))
		return many(c, `SELECT * FROM runs WHERE user_id = $1 AND deleted_at IS NULL
			ORDER BY created_at DESC, id DESC LIMIT $2`, *user, limit)
	})
	app.Post("/api/v1/runs", func(c *fiber.Ctx) error {
		var in struct {
			RecordingID string `json:"recordingId"`
		}
		if err := json.Unmarshal(c.Body(), &in); err != nil || in.RecordingID != *recording {
			return c.SendStatus(fiber.StatusBadRequest)
		}
		ctx := c.Context()
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var id string
		err = tx.QueryRow(ctx, `INSERT INTO runs (user_id, recording_id, recording_name, recording_url, actions_total)
			VALUES ($1, $2, 'floor', 'http://127.0.0.1/', $3) RETURNING id`, *user, in.RecordingID, *actions).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO run_actions (run_id, action_id, action_index, action_type)
			SELECT $1, 'act_' || i, i, 'click' FROM generate_series(0, $2 - 1) AS i`, id, *actions)
		if err != nil {
			return err
		}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: *stream, Values: []string{"run", id}}).Err(); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"data": fiber.Map{"id": id, "status": "queued"}})
	})

	errc := make(chan error, 1)
	go func() { errc <- app.Listen(*addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return app.Shutdown()
}
