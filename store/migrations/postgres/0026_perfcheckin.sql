-- 0026_perfcheckin: more room on each page of instances for the new row
-- versions check-ins write (their last-seen time). At fillfactor 80 about a
-- quarter of the benchmark's last-seen updates found no room on their page
-- (pruning needs the page to itself, and a batch's instances share pages
-- with the next batch's) and were not HOT: a new entry in each of the four
-- indexes. Pages written from now on keep half their space free.
ALTER TABLE instances SET (fillfactor = 50);
