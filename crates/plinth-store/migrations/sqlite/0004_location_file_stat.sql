-- What the file system said of each file when it was last read (size,
-- modification time, inode, and the reading configuration): a file whose
-- stat is unchanged is not read again. Empty means "read it next time".
ALTER TABLE location_files ADD COLUMN stat TEXT NOT NULL DEFAULT '';
