PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE burr_state (
                partition_key TEXT DEFAULT '',
                app_id TEXT NOT NULL,
                sequence_id INTEGER NOT NULL,
                position TEXT NOT NULL,
                status TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                PRIMARY KEY (partition_key, app_id, sequence_id, position)
            );
INSERT INTO burr_state VALUES('alice','app-1',0,'count','completed','{"n": 1, "chat": [{"role": "user", "content": "hi"}], "__SEQUENCE_ID": 0, "__PRIOR_STEP": "count"}','2026-12-05 18:05:52');
INSERT INTO burr_state VALUES('alice','app-1',1,'stamp','completed','{"n": 1, "chat": [{"role": "user", "content": "hi"}], "__SEQUENCE_ID": 1, "__PRIOR_STEP": "stamp", "when": 3.5, "nested": {"a": [1, 2, null]}, "tup": "(1, 2)"}','2026-12-05 18:05:52');
INSERT INTO burr_state VALUES('alice','app-1',2,'count','completed','{"n": 2, "chat": [{"role": "user", "content": "hi"}, {"role": "user", "content": "hi"}], "__SEQUENCE_ID": 2, "__PRIOR_STEP": "count", "when": 3.5, "nested": {"a": [1, 2, null]}, "tup": "(1, 2)"}','2026-12-05 18:05:52');
INSERT INTO burr_state VALUES('','app-2',0,'count','completed','{"n": 1, "chat": [{"role": "user", "content": "hi"}], "__SEQUENCE_ID": 0, "__PRIOR_STEP": "count"}','2026-12-05 18:05:52');
INSERT INTO burr_state VALUES('','app-2',1,'stamp','completed','{"n": 1, "chat": [{"role": "user", "content": "hi"}], "__SEQUENCE_ID": 1, "__PRIOR_STEP": "stamp", "when": 3.5, "nested": {"a": [1, 2, null]}, "tup": "(1, 2)"}','2026-12-05 18:05:52');
CREATE INDEX burr_state_created_at_index ON burr_state (created_at);
COMMIT;
