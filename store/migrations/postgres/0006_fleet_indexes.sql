-- 0006_fleet_indexes: check-ins maintain fleet_counts by set-based deltas.
--
-- A check-in batch (store/checkin.go) sets kiln.counts_by_batch for its
-- own transaction, so the row trigger leaves fleet_counts alone and the
-- batch adds its summed changes in one statement before it commits. Row
-- by row, every new instance of a batch updated the same counts row and
-- held its lock until commit, so concurrent batches queued behind each
-- other. Every other writer still goes through the trigger.
CREATE OR REPLACE FUNCTION kiln_count_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('kiln.counts_by_batch', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'UPDATE' AND OLD.image = NEW.image AND OLD.number = NEW.number
		AND OLD.environment = NEW.environment AND OLD.state = NEW.state THEN
		RETURN NULL;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE fleet_counts SET instances = instances - 1
			WHERE image = OLD.image AND number = OLD.number AND environment = OLD.environment AND state = OLD.state;
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') THEN
		INSERT INTO fleet_counts (image, number, environment, state, instances)
			VALUES (NEW.image, NEW.number, NEW.environment, NEW.state, 1)
			ON CONFLICT (image, number, environment, state) DO UPDATE SET instances = fleet_counts.instances + 1;
	END IF;
	RETURN NULL;
END
$$;

-- Room on each page for the new row version a check-in writes (its
-- last-seen time), so the update stays on the page (a HOT update) and the
-- four indexes are not touched.
ALTER TABLE instances SET (fillfactor = 80);
