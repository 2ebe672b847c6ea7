-- What the quality checks of one run ($1) found, per check (quality_run_counts), in check order.
SELECT check_name, severity, flags, cleared
FROM quality_run_counts
WHERE run_id = $1
ORDER BY severity, array_position(ARRAY['ohlc_inconsistent', 'nonpositive_price', 'unit_error',
                                        'suspected_split', 'price_jump', 'stale_bar',
                                        'missing_sessions'], check_name)
