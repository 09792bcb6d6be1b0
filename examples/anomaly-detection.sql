-- Anomaly detection: alert when a device's average temperature over the last 30 seconds
-- (a sliding window that moves every 10 seconds) goes above 80 degrees.
--
-- Readings are JSON records put into the delivery stream `sensor-readings`, e.g.
--   {"device_id": "d3", "temperature": 84.5, "reading_time": "2026-11-24T10:00:01.250Z"}
-- Alerts are POSTed to the HTTP endpoint as {"application", "requestId", "records": [...]}.

CREATE TABLE readings (
    device_id    VARCHAR,
    temperature  DOUBLE,
    reading_time TIMESTAMP(3),
    WATERMARK FOR reading_time AS reading_time - INTERVAL '2' SECOND
) WITH ('connector' = 'firehose', 'stream' = 'sensor-readings');

CREATE TABLE alerts WITH ('connector' = 'http', 'url' = 'http://127.0.0.1:9000/alerts');

INSERT INTO alerts
SELECT device_id,
       window_start,
       window_end,
       AVG(temperature) AS avg_temperature,
       COUNT(*)         AS readings
FROM TABLE(HOP(TABLE readings, DESCRIPTOR(reading_time), INTERVAL '10' SECOND, INTERVAL '30' SECOND))
GROUP BY device_id, window_start, window_end
HAVING AVG(temperature) > 80;
