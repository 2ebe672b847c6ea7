-- What one run of the hostile-input property recorded ($1 = run id, $2 = the preloaded company):
-- as bigint counts: row rejects, skipped files, rows in the table but the preloaded company's,
-- row rejects missing raw text or line, rows of the always-good file, rejects without a reason,
-- rows of the preloaded company; then the scripts the run ran (which load path it took).
SELECT
    (SELECT count(*) FROM load_rejects WHERE run_id = $1 AND kind = 'row'),
    (SELECT count(*) FROM load_rejects WHERE run_id = $1 AND kind = 'file'),
    (SELECT count(*) FROM historical_stocks_data WHERE company_name <> $2),
    (SELECT count(*) FROM load_rejects
      WHERE run_id = $1 AND kind = 'row' AND (raw_text IS NULL OR line IS NULL)),
    (SELECT count(*) FROM historical_stocks_data WHERE company_name = 'zzGOOD'),
    (SELECT count(*) FROM load_rejects WHERE run_id = $1 AND coalesce(reason, '') = ''),
    (SELECT count(*) FROM historical_stocks_data WHERE company_name = $2),
    (SELECT coalesce(scripts, '') FROM load_runs WHERE id = $1)
