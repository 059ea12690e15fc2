-- device_health_hourly: each device's readings per UTC hour of the event time.
-- keys: device_id, hour
SELECT
    device_id,
    date_trunc('hour', event_time) AS hour,
    count(*) AS reading_count,
    avg(temperature_c) AS avg_temperature_c,
    max(temperature_c) AS max_temperature_c,
    avg(vibration_mm_s) AS avg_vibration_mm_s,
    max(vibration_mm_s) AS max_vibration_mm_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY vibration_mm_s) AS p95_vibration_mm_s,
    avg(pressure_kpa) AS avg_pressure_kpa,
    max(pressure_kpa) AS max_pressure_kpa,
    avg(rpm) AS avg_rpm,
    max(rpm) AS max_rpm
FROM silver.iot_telemetry
GROUP BY device_id, date_trunc('hour', event_time)
