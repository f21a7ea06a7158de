-- posted_at and posted_contacts record a contacts_json_import call whose
-- answer is not known: set just before the call, cleared when CC answers
-- with a refusal. A retry that finds them set looks for the import among
-- CC's recent activities (by time and number of contacts) before it posts
-- again, so that an answer lost to a timeout or a reset, or a worker killed
-- between CC's 201 and the activity id's save, costs no second import.
ALTER TABLE cc_imports ADD COLUMN posted_at DATETIME(6) NULL;
ALTER TABLE cc_imports ADD COLUMN posted_contacts INT NULL;
CREATE INDEX cc_imports_activity ON cc_imports (activity_id);
