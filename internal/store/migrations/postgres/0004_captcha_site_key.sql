-- 0004_captcha_site_key (PostgreSQL): a form's public captcha site key, so
-- that its embed snippet carries the widget ready to paste. Keep in step
-- with ../sqlite/0004_captcha_site_key.sql.
ALTER TABLE forms ADD COLUMN captcha_site_key TEXT NOT NULL DEFAULT '';
