use super::*;

fn r(text: &str) -> EntityRef {
    text.parse().unwrap()
}

fn person(role: Role, groups: &[&str], scope: Option<Scope>) -> Principal {
    Principal {
        subject: Subject::User(r("user:default/ada")),
        role,
        groups: groups.iter().map(|g| r(g)).collect(),
        scope,
    }
}

#[test]
fn every_caller_may_read_whatever_their_token() {
    for role in [Role::Viewer, Role::Developer, Role::PlatformAdmin] {
        for scope in [
            None,
            Some(Scope::Read),
            Some(Scope::Write),
            Some(Scope::Admin),
        ] {
            assert_eq!(authorize(&person(role, &[], scope), &Action::Read), Ok(()));
        }
    }
}

#[test]
fn developers_change_what_their_groups_or_they_own() {
    let dev = person(Role::Developer, &["group:default/team-a"], None);
    let theirs = [r("group:default/team-a")];
    let own = [r("user:default/ada")];
    let others = [r("group:default/team-b")];
    for action in [
        Action::ChangeEntity { owners: &theirs },
        Action::ChangeEntity { owners: &own },
        Action::ChangeLocation {
            owners: &theirs,
            unowned: false,
        },
        // A location owns nothing until read: anyone who may write registers one.
        Action::RegisterLocation,
        Action::Refresh,
    ] {
        assert_eq!(authorize(&dev, &action), Ok(()), "{action:?}");
    }
    let refused = authorize(&dev, &Action::ChangeEntity { owners: &others }).unwrap_err();
    assert_eq!(
        refused.0,
        "user:default/ada may change only what they or their groups own; this is owned by group:default/team-b"
    );
    // A location is theirs only when all of it is.
    let mixed = [r("group:default/team-a"), r("group:default/team-b")];
    let refused = authorize(
        &dev,
        &Action::ChangeLocation {
            owners: &mixed,
            unowned: false,
        },
    )
    .unwrap_err();
    assert_eq!(
        refused.0,
        "user:default/ada may change a location only when they or their groups own every entity in it; its entities are owned by group:default/team-a, group:default/team-b"
    );
    assert!(
        authorize(
            &dev,
            &Action::ChangeLocation {
                owners: &theirs,
                unowned: true
            }
        )
        .is_err()
    );
    let empty = authorize(
        &dev,
        &Action::ChangeLocation {
            owners: &[],
            unowned: false,
        },
    )
    .unwrap_err();
    assert!(empty.0.contains("holds no entities"), "{empty}");
    // An entity without an owner is nobody's: only a platform admin changes it.
    assert!(authorize(&dev, &Action::ChangeEntity { owners: &[] }).is_err());
}

#[test]
fn viewers_only_read_and_admins_change_anything() {
    let viewer = person(Role::Viewer, &["group:default/team-a"], None);
    let theirs = [r("group:default/team-a")];
    let refused = authorize(&viewer, &Action::ChangeEntity { owners: &theirs }).unwrap_err();
    assert!(refused.0.contains("viewer role"), "{refused}");
    assert!(authorize(&viewer, &Action::RegisterLocation).is_err());
    assert!(authorize(&viewer, &Action::Refresh).is_err());
    let admin = person(Role::PlatformAdmin, &[], None);
    let others = [r("group:default/team-b")];
    assert_eq!(
        authorize(&admin, &Action::ChangeEntity { owners: &others }),
        Ok(())
    );
    assert_eq!(
        authorize(&admin, &Action::ChangeEntity { owners: &[] }),
        Ok(())
    );
    assert_eq!(authorize(&admin, &Action::ReadAudit), Ok(()));
    assert!(authorize(&person(Role::Developer, &[], None), &Action::ReadAudit).is_err());
}

#[test]
fn a_token_never_does_more_than_its_scope() {
    let theirs = [r("group:default/team-a")];
    let change = Action::ChangeEntity { owners: &theirs };
    let reader = person(
        Role::PlatformAdmin,
        &["group:default/team-a"],
        Some(Scope::Read),
    );
    let refused = authorize(&reader, &change).unwrap_err();
    assert_eq!(
        refused.0,
        "this token has the read scope; changing an entity needs a token with the write scope"
    );
    let writer = Principal {
        scope: Some(Scope::Write),
        ..reader.clone()
    };
    assert_eq!(authorize(&writer, &change), Ok(()));
    assert!(authorize(&writer, &Action::ReadAudit).is_err());
    let admin_token = Principal {
        scope: Some(Scope::Admin),
        ..reader
    };
    assert_eq!(authorize(&admin_token, &Action::ReadAudit), Ok(()));
    // Nor more than its owner's role: an admin-scoped token of a developer.
    let dev_admin_token = person(Role::Developer, &[], Some(Scope::Admin));
    assert!(authorize(&dev_admin_token, &Action::ReadAudit).is_err());
    let others = [r("group:default/team-b")];
    assert!(authorize(&dev_admin_token, &Action::ChangeEntity { owners: &others }).is_err());
}

#[test]
fn people_manage_their_own_tokens_and_admins_all() {
    let dev = person(Role::Developer, &[], None);
    let me = Subject::User(r("user:default/ada"));
    let other = Subject::User(r("user:default/bob"));
    let service = Subject::Service("ci".into());
    assert_eq!(
        authorize(&dev, &Action::ManageTokens { subject: &me }),
        Ok(())
    );
    assert!(authorize(&dev, &Action::ManageTokens { subject: &other }).is_err());
    assert!(authorize(&dev, &Action::ManageTokens { subject: &service }).is_err());
    let admin = person(Role::PlatformAdmin, &[], None);
    assert_eq!(
        authorize(&admin, &Action::ManageTokens { subject: &service }),
        Ok(())
    );
    assert!(authorize(&dev, &Action::ManageEveryonesTokens).is_err());
    assert_eq!(authorize(&admin, &Action::ManageEveryonesTokens), Ok(()));
    // A write token cannot mint tokens, not even its owner's.
    let write = person(Role::Developer, &[], Some(Scope::Write));
    assert!(authorize(&write, &Action::ManageTokens { subject: &me }).is_err());
}

#[test]
fn the_local_user_may_do_everything() {
    let local = Principal::local();
    let others = [r("group:default/team-b")];
    for action in [
        Action::Read,
        Action::ChangeEntity { owners: &others },
        Action::ChangeLocation {
            owners: &others,
            unowned: true,
        },
        Action::ReadAudit,
        Action::ManageTokens {
            subject: &Subject::Service("ci".into()),
        },
    ] {
        assert_eq!(authorize(&local, &action), Ok(()), "{action:?}");
    }
}

#[test]
fn roles_and_scopes_read_back_from_their_names() {
    for role in [Role::Viewer, Role::Developer, Role::PlatformAdmin] {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        assert_eq!(Scope::parse(scope.as_str()), Some(scope));
    }
    assert_eq!(Role::parse("admin"), None);
    assert_eq!(Scope::parse("Write"), None);
}
